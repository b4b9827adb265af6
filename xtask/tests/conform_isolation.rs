//! `conform` and `smoke` on fake plugins that crash or hang where a test
//! wants (built with the system C compiler): the report is always written,
//! names the check (or phase) and the signal, and members past a plugin's
//! `struct_size` are never called. No network needed.

mod support;

use std::path::Path;
use std::process::Command;

use support::fake_plugin::{Behaviour, Fake};
use support::require_command;

use std::mem::offset_of;

use pjrt_sys::PJRT_Api;

struct Run {
    code: Option<i32>,
    json: serde_json::Value,
    stderr: String,
}

fn xtask(args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_xtask")).args(args).output().expect("run xtask");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let json = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("xtask {args:?} printed no JSON ({e}), exit {:?}; stderr:\n{stderr}", out.status.code()));
    Run { code: out.status.code(), json, stderr }
}

fn conform(plugin: &Path, extra: &[&str]) -> Run {
    let mut args = vec!["conform", plugin.to_str().unwrap(), "--json"];
    args.extend(extra);
    xtask(&args)
}

fn check<'a>(report: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    report["checks"].as_array().unwrap().iter().find(|c| c["id"] == id).unwrap_or_else(|| panic!("no check {id} in the report"))
}

/// Every check of the suite has a result: the report completed.
fn assert_complete(report: &serde_json::Value) {
    let checks = report["checks"].as_array().unwrap();
    assert!(checks.len() >= 63, "only {} checks in the report", checks.len());
    let total: u64 = report["counts"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum();
    assert_eq!(total as usize, checks.len());
}

fn cc() -> Option<tempfile::TempDir> {
    require_command("cc").then(|| tempfile::tempdir().unwrap())
}

#[test]
fn crash_in_get_pjrt_api_is_reported_by_smoke() {
    let Some(dir) = cc() else { return };
    let plugin = Fake { get_api: Some(Behaviour::Segfault), ..Fake::new(81) }.build(dir.path(), "crash_get_api");
    let run = xtask(&["smoke", plugin.to_str().unwrap(), "--json"]);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert_eq!(run.json["ok"], false);
    let error = run.json["error"].as_str().unwrap();
    assert!(error.contains("crashed with SIGSEGV (signal 11)") && error.contains("loading the plugin"), "{error}");
    assert!(run.stderr.contains("error: smoke test of"), "{}", run.stderr);
}

#[test]
fn crash_in_get_pjrt_api_fails_api_load_and_skips_the_rest() {
    let Some(dir) = cc() else { return };
    let plugin = Fake { get_api: Some(Behaviour::Segfault), ..Fake::new(81) }.build(dir.path(), "crash_get_api");
    let run = conform(&plugin, &[]);
    let r = &run.json;
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert_complete(r);
    let load = check(r, "api.load");
    assert_eq!(load["status"], "FAIL");
    assert!(load["detail"].as_str().unwrap().contains("crashed with SIGSEGV"), "{load}");
    assert_eq!(r["crashed"], serde_json::json!(["api.load"]), "one crash, then nothing tries to load the plugin again");
    assert!(r["broken"]["plugin"].as_str().unwrap().contains("SIGSEGV"), "{}", r["broken"]);
    assert_eq!(r["counts"]["FAIL"], 1);
    assert_eq!(check(r, "execute.smoke")["status"], "SKIP");
}

#[test]
fn crash_in_one_member_fails_that_check_and_the_group_resumes() {
    let Some(dir) = cc() else { return };
    let fake = Fake { members: vec![(offset_of!(PJRT_Api, PJRT_Client_PlatformVersion), Behaviour::Abort)], ..Fake::new(81) };
    let plugin = fake.build(dir.path(), "crash_platform_version");
    let run = conform(&plugin, &[]);
    let r = &run.json;
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert_complete(r);
    let crashed = check(r, "client.platform_version");
    assert_eq!(crashed["status"], "FAIL");
    assert!(
        crashed["detail"].as_str().unwrap().contains("crashed with SIGABRT (signal 6) in PJRT_Client_PlatformVersion during this check"),
        "{crashed}"
    );
    assert_eq!(r["crashed"], serde_json::json!(["client.platform_version"]));
    assert_eq!(crashed["call"], "PJRT_Client_PlatformVersion", "the call in flight is recorded: {crashed}");
    assert!(crashed["detail"].as_str().unwrap().contains("in PJRT_Client_PlatformVersion"), "{crashed}");
    // The checks after it in the same group ran in a new process.
    assert_eq!(check(r, "client.process_index")["status"], "PASS");
    assert_eq!(check(r, "client.create")["status"], "PASS");

    // smoke calls it too: the crash is reported with its phase.
    let run = xtask(&["smoke", plugin.to_str().unwrap(), "--json"]);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    let error = run.json["error"].as_str().unwrap();
    assert!(error.contains("crashed with SIGABRT") && error.contains("listing the devices"), "{error}");
    assert_eq!(run.json["api_version"], "0.81", "what was learnt before the crash is kept");
}

#[test]
fn crash_making_the_client_skips_what_needs_one() {
    let Some(dir) = cc() else { return };
    let fake = Fake { members: vec![(offset_of!(PJRT_Api, PJRT_Client_Create), Behaviour::Segfault)], ..Fake::new(81) };
    let plugin = fake.build(dir.path(), "crash_client_create");
    let run = conform(&plugin, &[]);
    let r = &run.json;
    assert_complete(r);
    assert_eq!(check(r, "client.create")["status"], "FAIL");
    assert!(r["broken"]["client"].as_str().unwrap().contains("SIGSEGV"), "{}", r["broken"]);
    assert_eq!(r["crashed"].as_array().unwrap().len(), 1, "no other check crashes on the client again: {}", r["crashed"]);
    let skipped = check(r, "buffer.roundtrip_f32");
    assert_eq!(skipped["status"], "SKIP");
    assert!(skipped["detail"].as_str().unwrap().contains("no client"), "{skipped}");
}

#[test]
fn a_hanging_member_is_killed_after_the_timeout() {
    let Some(dir) = cc() else { return };
    let fake = Fake { members: vec![(offset_of!(PJRT_Api, PJRT_Client_PlatformName), Behaviour::Hang)], ..Fake::new(81) };
    let plugin = fake.build(dir.path(), "hang_platform_name");
    let run = conform(&plugin, &["--timeout", "3"]);
    let r = &run.json;
    assert_complete(r);
    let hung = check(r, "client.platform_name");
    assert_eq!(hung["status"], "FAIL");
    assert!(hung["detail"].as_str().unwrap().contains("did not finish within 3 s"), "{hung}");
    assert_eq!(check(r, "client.platform_version")["status"], "PASS");
}

/// Every member past the fake's struct_size crashes when called; so does
/// every Layouts member past its extension's struct_size (an API 0.81
/// plugin's Layouts ends before GetParameterLayouts: pypjrt's conform
/// reads past it and crashes). The suite must call none of them.
#[test]
fn members_past_struct_size_are_unsupported_and_never_called() {
    let Some(dir) = cc() else { return };
    let fake = Fake { layouts_extension: Some(72), ..Fake::new(81) };
    let plugin = fake.build(dir.path(), "old_plugin");
    let run = conform(&plugin, &[]);
    let r = &run.json;
    assert_complete(r);
    assert_eq!(r["crashed"], serde_json::json!([]), "a member past struct_size was called: {}", r["crashed"]);
    assert_eq!(r["api_version"], "0.81");
    for (id, member) in [
        ("executable.compile_options", "PJRT_Executable_GetCompileOptions"),
        ("event.create_and_set", "PJRT_Event_Create"),
        ("event.set_error", "PJRT_Event_Create"),
        ("buffer.roundtrip_s1", "S1 arrived in PJRT 0.94"),
    ] {
        let c = check(r, id);
        assert_eq!(c["status"], "UNSUPPORTED", "{c}");
        assert!(c["detail"].as_str().unwrap().contains(member), "{c}");
    }
    let c = check(r, "layouts.executable_parameter_layouts");
    assert_eq!(c["status"], "UNSUPPORTED", "{c}");
    let detail = c["detail"].as_str().unwrap();
    assert!(detail.contains("lies past the end of the plugin's PJRT_Layouts_Extension (72 bytes"), "{c}");
    assert_eq!(check(r, "layouts.executable_output_layouts")["status"], "FAIL", "within 72 bytes: called (the fake answers 0 layouts)");
    assert_eq!(check(r, "api.members_past_struct_size_refused")["status"], "PASS");
    assert!(r["extensions"][0]["name"] == "Layouts", "{}", r["extensions"]);
}

#[test]
fn a_directory_is_not_a_plugin() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("lib")).unwrap();
    std::fs::write(dir.path().join("lib/libpjrt_cpu.so"), b"").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_xtask")).args(["smoke", dir.path().to_str().unwrap()]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("is a directory, not a plugin") && stderr.contains("libpjrt_cpu.so"), "{stderr}");
    assert!(!stderr.contains("does not exist"), "{stderr}");
}

/// An ELF library for another architecture: the loader reads its header
/// and says so, instead of dlopen's "wrong ELF class" or "cannot open".
#[test]
fn a_plugin_for_another_architecture_is_named_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let foreign = if std::env::consts::ARCH == "aarch64" { 62u16 } else { 183u16 };
    let mut elf = vec![0u8; 64];
    elf[..4].copy_from_slice(b"\x7fELF");
    elf[4] = 2; // ELFCLASS64
    elf[5] = 1; // little-endian
    elf[6] = 1; // EV_CURRENT
    elf[16..18].copy_from_slice(&3u16.to_le_bytes()); // ET_DYN
    elf[18..20].copy_from_slice(&foreign.to_le_bytes());
    let path = dir.path().join("libpjrt_foreign.so");
    std::fs::write(&path, &elf).unwrap();
    let run = xtask(&["smoke", path.to_str().unwrap(), "--json"]);
    assert_eq!(run.code, Some(1));
    let error = run.json["error"].as_str().unwrap();
    let built_for = if foreign == 183 { "aarch64" } else { "x86_64" };
    assert!(error.contains(&format!("it is built for {built_for}, this machine is {}", std::env::consts::ARCH)), "{error}");
}

/// Issue 21: the second member of PJRT_Api is `void* priv` until 0.30 and an
/// untyped `extension_start` until 0.44, whose elements carry no
/// struct_size. A plugin of those versions with garbage there is neither
/// walked as a modern chain nor blamed for a crash: at 0.20 it is not read
/// at all; at 0.40 the chain is read as 0.40 lays it out, with reads that
/// cannot fault, and the garbage is a FAIL of `extensions.chain` with its
/// reason. No check crashes, the header names the version.
#[test]
fn an_old_plugin_with_a_garbage_second_member_is_read_as_its_version_means() {
    let Some(dir) = cc() else { return };
    for (minor, expected) in [(20u32, "UNSUPPORTED"), (40, "FAIL")] {
        let fake = Fake { second_member: Some(0x10), ..Fake::new(minor) };
        let plugin = fake.build(dir.path(), &format!("garbage_second_member_{minor}"));
        let run = conform(&plugin, &[]);
        let r = &run.json;
        assert_complete(r);
        assert_eq!(r["api_version"], format!("0.{minor}"), "{}", run.stderr);
        assert_eq!(r["crashed"], serde_json::json!([]), "0.{minor}: {}", r["crashed"]);
        assert_eq!(r["counts"]["ERROR"], 0, "0.{minor}: the harness did not crash either");
        let chain = check(r, "extensions.chain");
        assert_eq!(chain["status"], expected, "0.{minor}: {chain}");
        let detail = chain["detail"].as_str().unwrap();
        if minor == 20 {
            assert!(detail.contains("`void* priv`, not an extension chain"), "{chain}");
        } else {
            assert!(detail.contains("at 0x10, is not readable memory") && detail.contains("without struct_size"), "{chain}");
        }
        assert_eq!(check(r, "client.create")["status"], "PASS", "0.{minor}");
    }
}

/// Issue 21: a crash in the harness's own reading of what a plugin handed
/// over (a platform name pointing at unmapped memory) is the harness's:
/// status ERROR, a reason that says so and names the last call, not in
/// `crashed`, not a FAIL. The checks after it still run.
#[test]
fn a_crash_outside_any_plugin_call_is_the_harness_error_not_a_plugin_fail() {
    let Some(dir) = cc() else { return };
    // PJRT_Client_PlatformName_Args: struct_size, extension_start, client,
    // platform_name, platform_name_size.
    let garbage = Behaviour::C("((void**)args)[3] = (void*)0x10; ((size_t*)args)[4] = 64; return NULL;");
    let fake = Fake { members: vec![(offset_of!(PJRT_Api, PJRT_Client_PlatformName), garbage)], ..Fake::new(81) };
    let plugin = fake.build(dir.path(), "garbage_platform_name");
    let run = conform(&plugin, &[]);
    let r = &run.json;
    assert_complete(r);
    let c = check(r, "client.platform_name");
    assert_eq!(c["status"], "ERROR", "{c}");
    let detail = c["detail"].as_str().unwrap();
    assert!(detail.contains("the harness (not the plugin) crashed with SIGSEGV"), "{c}");
    assert!(detail.contains("after PJRT_Client_PlatformName returned"), "{c}");
    assert!(c.get("call").is_none(), "no call was in flight: {c}");
    assert_eq!(r["crashed"], serde_json::json!([]), "not the plugin's crash");
    let crash_fails: Vec<&serde_json::Value> = r["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "FAIL" && c["detail"].as_str().unwrap().contains("crashed"))
        .collect();
    assert!(crash_fails.is_empty(), "a crash counted against the plugin: {crash_fails:?}");
    assert_eq!(check(r, "client.platform_version")["status"], "PASS", "the group went on");
    // The fake answers nothing, so some checks FAIL on its behaviour: those
    // decide the exit status (2); a harness error alone would be 1.
    assert_eq!(run.code, Some(2), "{}", run.stderr);
}

/// The statuses and crashes of a report, for comparing runs.
fn verdicts(report: &serde_json::Value) -> (Vec<(String, String)>, serde_json::Value, serde_json::Value) {
    let checks = report["checks"].as_array().unwrap().iter().map(|c| (c["id"].to_string(), c["status"].to_string())).collect();
    (checks, report["crashed"].clone(), report["broken"].clone())
}

/// Issue 21 (speed): the checks are dealt into lanes, the lead lane making
/// the first client while the others wait at a gate. However many lanes,
/// the report is the same: one lane, two, three, and a crash making the
/// client (the others are told, and never try), or in GetPjrtApi (a lane
/// that crashed loading the plugin ahead of the lead is started again,
/// told the plugin is broken, and no crash is counted twice).
#[test]
fn the_report_does_not_depend_on_the_number_of_lanes() {
    let Some(dir) = cc() else { return };
    let fakes = [
        Fake { members: vec![(offset_of!(PJRT_Api, PJRT_Client_PlatformVersion), Behaviour::Abort)], ..Fake::new(81) },
        Fake { members: vec![(offset_of!(PJRT_Api, PJRT_Client_Create), Behaviour::Segfault)], ..Fake::new(81) },
        Fake { get_api: Some(Behaviour::Segfault), ..Fake::new(81) },
    ];
    for (i, fake) in fakes.into_iter().enumerate() {
        let plugin = fake.build(dir.path(), &format!("lanes_{i}"));
        let one = conform(&plugin, &["--jobs", "1"]).json;
        assert_complete(&one);
        for jobs in ["2", "3"] {
            let many = conform(&plugin, &["--jobs", jobs]).json;
            assert_eq!(verdicts(&many), verdicts(&one), "fake {i}, --jobs {jobs} against --jobs 1");
        }
    }
}

/// A fake whose PJRT_Client_Create appends its process id to `log`, with
/// " overlap" when a process that made a client before is still alive.
fn client_logger(log: &Path) -> Behaviour {
    let body = format!(
        "{{ char line[64]; int overlap = 0; FILE* f = fopen(\"{}\", \"a+\"); if (!f) return NULL; rewind(f); \
         while (fgets(line, sizeof line, f)) {{ int pid = atoi(line); if (pid > 0 && pid != getpid() && kill(pid, 0) == 0) overlap = 1; }} \
         fprintf(f, \"%d%s\\n\", (int)getpid(), overlap ? \" overlap\" : \"\"); fclose(f); return NULL; }}",
        log.display()
    );
    Behaviour::C(Box::leak(body.into_boxed_str()))
}

/// An accelerator takes its device once per client: a plugin whose
/// extensions say it is one (a Gpu_Custom_Call extension, no backend
/// known) never has clients in two processes at once, though the lanes
/// were started before the lead found out. A CPU plugin's lanes do (the
/// control: the log can show an overlap).
#[test]
fn an_accelerator_never_has_clients_in_two_processes_at_once() {
    let Some(dir) = cc() else { return };
    for gpu in [true, false] {
        let log = dir.path().join(format!("clients-{gpu}.log"));
        // Destroying a client takes 300 ms, so a process that made one is
        // still alive when a lane beside it makes its own (otherwise whether
        // the CPU control shows an overlap depends on scheduling).
        let members = vec![
            (offset_of!(PJRT_Api, PJRT_Client_Create), client_logger(&log)),
            (offset_of!(PJRT_Api, PJRT_Client_Destroy), Behaviour::C("{ usleep(300000); return NULL; }")),
        ];
        let fake = Fake { members, gpu_extension: gpu, ..Fake::new(81) };
        let plugin = fake.build(dir.path(), &format!("accelerator_{gpu}"));
        let run = conform(&plugin, &["--jobs", "2"]);
        assert_complete(&run.json);
        assert_eq!(check(&run.json, "client.create")["status"], "PASS", "{}", run.stderr);
        let log = std::fs::read_to_string(&log).unwrap();
        let processes: std::collections::BTreeSet<&str> = log.lines().map(|l| l.split(' ').next().unwrap()).collect();
        assert!(processes.len() >= 2, "gpu {gpu}: the checks ran in one process:\n{log}");
        assert_eq!(log.contains("overlap"), !gpu, "gpu {gpu}:\n{log}");
    }
}

/// A callback called twice, the second time 5 ms after the first (from a
/// thread of the plugin's): the event checks no longer sleep through a
/// window after each callback, they look again once the process's other
/// checks have run; the second call is still caught.
#[test]
fn a_callback_called_twice_late_fails_its_check() {
    let Some(dir) = cc() else { return };
    const LATE: &str = "#include <pthread.h>\n\
        struct late { void (*callback)(void*, void*); void* user; };\n\
        static void* call_again(void* p) { struct late* l = p; usleep(5000); l->callback(NULL, l->user); return NULL; }\n";
    // PJRT_Event_OnReady_Args: struct_size, extension_start, event, callback, user_arg.
    let twice = Behaviour::C(
        "{ void** a = args; struct late* l = malloc(sizeof *l); l->callback = (void (*)(void*, void*))a[3]; l->user = a[4]; \
         l->callback(NULL, l->user); pthread_t t; pthread_create(&t, NULL, call_again, l); pthread_detach(t); return NULL; }",
    );
    let fake = Fake { members: vec![(offset_of!(PJRT_Api, PJRT_Event_OnReady), twice)], extra_c: LATE, ..Fake::new(106) };
    let plugin = fake.build(dir.path(), "callback_twice");
    let run = conform(&plugin, &[]);
    let c = check(&run.json, "event.create_and_set");
    assert_eq!(c["status"], "FAIL", "{c}");
    assert!(c["detail"].as_str().unwrap().contains("called 2 times"), "{c}");
}

/// The exit status of a run whose only problem is the harness's: 1, the
/// report printed all the same. The fake's PJRT_Plugin_Initialize returns
/// an error whose message points at unmapped memory: the harness crashes
/// reading it (outside any plugin call) while making the plugin, so
/// plugin.initialize is ERROR and every check that needs an initialized
/// plugin SKIPs; nothing FAILs.
#[test]
fn a_harness_error_alone_exits_1() {
    let Some(dir) = cc() else { return };
    // PJRT_Error_Message_Args: struct_size, extension_start, error, message, message_size.
    let garbage_message = Behaviour::C("((void**)args)[3] = (void*)0x10; ((size_t*)args)[4] = 64; return NULL;");
    let fake = Fake {
        members: vec![
            (offset_of!(PJRT_Api, PJRT_Plugin_Initialize), Behaviour::C("return (void*)1;")),
            (offset_of!(PJRT_Api, PJRT_Error_Message), garbage_message),
        ],
        ..Fake::new(81)
    };
    let plugin = fake.build(dir.path(), "harness_error_only");
    let run = conform(&plugin, &[]);
    let r = &run.json;
    assert_complete(r);
    assert_eq!(r["counts"]["FAIL"], 0, "{}", r["counts"]);
    assert_eq!(r["counts"]["ERROR"], 1, "{}", r["counts"]);
    let c = check(r, "plugin.initialize");
    assert_eq!(c["status"], "ERROR", "{c}");
    assert!(c["detail"].as_str().unwrap().contains("after PJRT_Error_Message returned"), "{c}");
    assert_eq!(r["crashed"], serde_json::json!([]));
    assert_eq!(run.code, Some(1), "a harness error and no failure: {}", run.stderr);
    // The text report says so too, with the same status.
    let out = Command::new(env!("CARGO_BIN_EXE_xtask")).args(["conform", plugin.to_str().unwrap()]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("ERROR") && text.contains("plugin.initialize"), "{text}");
}

/// Issue 21 (speed): the plugin is loaded once, by a fork server, and
/// every lane's process (restarts included) is forked from it. A plugin
/// whose loading starts a thread cannot be forked safely: each lane then
/// starts its own process, and the report is the same as with one lane.
#[test]
fn lanes_are_forked_from_one_load_unless_the_load_starts_a_thread() {
    let Some(dir) = cc() else { return };
    let crash = (offset_of!(PJRT_Api, PJRT_Client_PlatformVersion), Behaviour::Abort);
    let plugin = Fake { members: vec![crash], ..Fake::new(81) }.build(dir.path(), "forked");
    let r = conform(&plugin, &["--jobs", "2"]).json;
    assert_complete(&r);
    assert_eq!(r["processes"]["started"], 1, "one load: {}", r["processes"]);
    assert!(r["processes"]["forked"].as_u64().unwrap() >= 3, "the lead, its restart after the crash, the second lane: {}", r["processes"]);
    let afresh = conform(&plugin, &["--jobs", "2", "--no-fork"]).json;
    assert_eq!(afresh["processes"]["forked"], 0, "{}", afresh["processes"]);
    assert_eq!(verdicts(&afresh), verdicts(&r), "--no-fork");

    const THREAD: &str = "#include <pthread.h>\n\
        static void* idle(void* p) { (void)p; for (;;) pause(); return NULL; }\n\
        __attribute__((constructor)) static void start(void) { pthread_t t; pthread_create(&t, NULL, idle, NULL); }\n";
    let plugin = Fake { members: vec![crash], extra_c: THREAD, ..Fake::new(81) }.build(dir.path(), "threaded");
    let many = conform(&plugin, &["--jobs", "2"]).json;
    assert_complete(&many);
    assert_eq!(many["processes"]["forked"], 0, "{}", many["processes"]);
    assert!(many["processes"]["started"].as_u64().unwrap() >= 4, "the server, the lanes, a restart: {}", many["processes"]);
    let one = conform(&plugin, &["--jobs", "1"]).json;
    assert_eq!(verdicts(&many), verdicts(&one));
    assert_eq!(check(&many, "client.platform_version")["status"], "FAIL");
}

/// A worker that kills the fork server (its parent): the workers die with
/// it, and the checks they had not reported run in processes of their own.
/// The fake kills its parent once (a marker file), in
/// PJRT_Client_PlatformVersion; the second time it answers.
#[test]
fn a_dead_fork_server_is_replaced_by_processes_of_their_own() {
    let Some(dir) = cc() else { return };
    let marker = dir.path().join("killed-once");
    let body = format!(
        "{{ if (access(\"{0}\", F_OK) != 0) {{ FILE* f = fopen(\"{0}\", \"w\"); if (f) fclose(f); kill(getppid(), SIGKILL); sleep(5); }} return NULL; }}",
        marker.display()
    );
    let killer = Behaviour::C(Box::leak(body.into_boxed_str()));
    let plugin = Fake { members: vec![(offset_of!(PJRT_Api, PJRT_Client_PlatformVersion), killer)], ..Fake::new(81) }
        .build(dir.path(), "kills_its_parent");
    let run = conform(&plugin, &["--jobs", "2"]);
    let r = &run.json;
    assert_complete(r);
    assert!(marker.exists(), "the fake never ran its member");
    assert_eq!(check(r, "client.platform_version")["status"], "PASS", "run again, answered: {}", check(r, "client.platform_version"));
    assert_eq!(r["crashed"], serde_json::json!([]), "nothing is blamed for the server's death");
    assert!(r["processes"]["started"].as_u64().unwrap() >= 2, "{}", r["processes"]);
    let one = conform(&plugin, &["--jobs", "1"]).json;
    assert_eq!(verdicts(r), verdicts(&one));
}

/// A plugin whose GetPjrtApi never returns: the fork server's load is
/// api.load's, killed at the time limit once, and nothing loads it again.
#[test]
fn a_hanging_load_fails_api_load_once() {
    let Some(dir) = cc() else { return };
    let plugin = Fake { get_api: Some(Behaviour::Hang), ..Fake::new(81) }.build(dir.path(), "hang_get_api");
    let started = std::time::Instant::now();
    let run = conform(&plugin, &["--timeout", "2"]);
    let took = started.elapsed();
    let r = &run.json;
    assert_complete(r);
    let load = check(r, "api.load");
    assert_eq!(load["status"], "FAIL", "{load}");
    assert!(
        load["detail"].as_str().unwrap().contains("did not finish within 2 s") && load["detail"].as_str().unwrap().contains("GetPjrtApi"),
        "{load}"
    );
    assert_eq!(check(r, "client.create")["status"], "SKIP");
    assert!(took < std::time::Duration::from_secs(4), "the load was waited for more than once: {took:?}");
    assert_eq!(r["processes"]["forked"], 0);
}
