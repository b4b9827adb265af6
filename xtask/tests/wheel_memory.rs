//! Wheels are read as streams: finding the plugin in a wheel whose library
//! is far larger than memory should allow keeps the process small. Its own
//! test binary (one test), so the peak memory measured is this test's.

use std::io::Write;

/// Peak resident memory of this process so far, in bytes (Linux VmHWM).
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).expect("VmHWM in /proc/self/status");
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}

/// Issue 13, item 11: a small wheel holding a huge library (256 MiB of
/// zeros, compressed to a fraction of a MiB, its GetPjrtApi at the very
/// end) is searched in bounded memory; it used to be read whole.
#[test]
fn a_huge_member_is_streamed() {
    if !cfg!(target_os = "linux") {
        return;
    }
    const MEMBER: usize = 256 << 20;
    let dir = tempfile::tempdir().unwrap();
    let wheel = dir.path().join("huge-1.0-py3-none-manylinux_2_27_x86_64.whl");
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&wheel).unwrap());
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated).large_file(false);
    zip.start_file("huge/libhuge.so", options).unwrap();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..MEMBER / zeros.len() {
        zip.write_all(&zeros).unwrap();
    }
    zip.write_all(b"GetPjrtApi\0").unwrap();
    zip.start_file("huge/libother.so", options).unwrap();
    zip.write_all(b"no plugin here").unwrap();
    zip.finish().unwrap();
    let compressed = std::fs::metadata(&wheel).unwrap().len();
    assert!(compressed < 4 << 20, "the wheel is {compressed} bytes");

    let before = peak_rss();
    let found = xtask::wheels::wheel::find_library(&wheel).unwrap();
    let grew = peak_rss().saturating_sub(before);
    assert_eq!(found, "huge/libhuge.so");
    let peak = peak_rss();
    eprintln!(
        "wheel {compressed} bytes, member {MEMBER} bytes: peak memory {} MiB, grew by {} KiB while searching",
        peak >> 20,
        grew / 1024
    );
    assert!(grew < 32 << 20, "finding the plugin took {} MiB more memory", grew >> 20);
    // Writing the wheel streamed too: the whole test stays far below the member's size.
    assert!(peak < (MEMBER as u64) / 4, "peak memory {} MiB", peak >> 20);
}
