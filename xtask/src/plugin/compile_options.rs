//! A serialized `xla.CompileOptionsProto`, encoded by hand: the smoke test
//! needs three integers, not a protobuf code generator.
//!
//! Field numbers (xla/pjrt/proto/compile_options.proto at the pinned commit):
//! `CompileOptionsProto.executable_build_options = 3`;
//! `ExecutableBuildOptionsProto.device_ordinal = 1`, `num_replicas = 4`,
//! `num_partitions = 5` (all int64).

const WIRE_VARINT: u64 = 0;
const WIRE_LEN: u64 = 2;

/// Options for one replica, one partition, default device (`-1`).
pub fn single_device() -> Vec<u8> {
    let mut build = Vec::new();
    int64_field(&mut build, 1, -1); // device_ordinal: let the client choose
    int64_field(&mut build, 4, 1); // num_replicas
    int64_field(&mut build, 5, 1); // num_partitions
    let mut options = Vec::new();
    varint(&mut options, (3 << 3) | WIRE_LEN); // executable_build_options
    varint(&mut options, build.len() as u64);
    options.extend_from_slice(&build);
    options
}

fn int64_field(out: &mut Vec<u8>, field: u64, value: i64) {
    varint(out, (field << 3) | WIRE_VARINT);
    // int64 is encoded as the two's complement u64: -1 takes ten bytes.
    varint(out, value as u64);
}

fn varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_follow_the_protobuf_encoding() {
        // Examples of the protobuf encoding guide: 1 -> 01, 150 -> 96 01.
        let mut v = Vec::new();
        varint(&mut v, 1);
        varint(&mut v, 150);
        assert_eq!(v, [0x01, 0x96, 0x01]);
        let mut v = Vec::new();
        int64_field(&mut v, 1, -1);
        assert_eq!(v.len(), 11, "tag + ten bytes for a negative int64");
        assert_eq!(v[0], 0x08);
        assert!(v[1..10].iter().all(|&b| b == 0xff) && v[10] == 0x01);
    }

    #[test]
    fn nests_build_options_as_field_3() {
        let o = single_device();
        assert_eq!(o[0], 0x1a, "field 3, length-delimited");
        assert_eq!(o[1] as usize, o.len() - 2);
        assert_eq!(&o[o.len() - 4..], &[0x20, 0x01, 0x28, 0x01], "num_replicas = 1, num_partitions = 1");
    }
}
