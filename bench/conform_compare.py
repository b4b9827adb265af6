"""Compare a `cargo xtask conform --json` report with a pypjrt.conform one.

    python3 bench/conform_compare.py OURS.json PYPJRT.json OURS_STATUS PYPJRT_STATUS

Prints both harnesses' counts and every check the two judge differently,
through the correspondence below (pypjrt id -> conform id). Used by
bench/conform.sh; the analysis of each disagreement is in docs/conform.md.
"""

import json
import sys

# pypjrt 0.1.1's 63 checks and the conform check that tests the same thing
# (None: conform has no counterpart; see docs/conform.md).
SAME = {
    "abi.api_version_readable": "api.load",
    "abi.struct_size_consistent": "api.struct_size_aligned",
    "abi.vtable_within_headers": "api.version_in_history",
    "abi.unknown_slot_is_clean_error": "api.members_past_struct_size_refused",
    "plugin.initialize": "plugin.initialize",
    "plugin.attributes": "plugin.attributes",
    "plugin.xla_version_present": "plugin.attribute_xla_version",
    "plugin.stablehlo_version_range": "plugin.attribute_stablehlo_versions",
    "extensions.chain_walk": "extensions.chain",
    "extensions.unknown_types_preserved": "extensions.types_named",
    "client.create": "client.create",
    "client.platform_name": "client.platform_name",
    "client.platform_version": "client.platform_version",
    "client.process_index": "client.process_index",
    "client.addressable_devices": "client.addressable_devices",
    "client.all_devices": "client.devices",
    "client.addressable_memories": "client.addressable_memories",
    "client.topology_description": "topology.platform_name",
    "errors.error_code_reported": "errors.invalid_program",
    "device.description": "device.description_kind",
    "device.is_addressable": "device.is_addressable",
    "device.local_hardware_id": "device.local_hardware_id",
    "device.default_memory": "device.default_memory",
    "device.memory_stats": "device.memory_stats",
    "device.clear_memory_stats": "device.clear_memory_stats",
    "device.memory_spaces": "device.addressable_memories",
    "device.execute_context": "execute.context",
    "triton.compile": None,
    "compile.stablehlo_text": "compile.mlir_with_options",
    "compile.num_outputs": "executable.num_outputs",
    "compile.output_element_types": "executable.output_element_types",
    "compile.output_dimensions": "executable.output_dimensions",
    "compile.fingerprint": "executable.fingerprint",
    "compile.compiled_memory_stats": "executable.compiled_memory_stats",
    "compile.cost_analysis": "executable.cost_analysis",
    "compile.serialize": "executable.serialize",
    "compile.optimized_program": "executable.optimized_program",
    "compile.deserialize_and_load": "executable.deserialize_and_load",
    "device.attributes": "device.attributes",
    "device.coords": "device.coords",
    "topology.from_client": "topology.from_client",
    "topology.device_descriptions": "topology.device_descriptions",
    "topology.fingerprint": "topology.fingerprint",
    "topology.serialize": "topology.serialize",
    "topology.deserialize": "topology.deserialize",
    "topology.create_by_name": "topology.create_by_name",
    "topology.client_free_compile": "topology.compile_without_client",
    "abi_version.extension_present": "abi_version.runtime",
    "abi_version.executable_proto": "abi_version.executable_compatible",
    "abi_version.is_compatible_with_executable": "abi_version.executable_compatible",
    "transfer.async_host_to_device": "buffer.async_host_to_device",
    "layouts.buffer_and_default": "layouts.buffer_layout",
    "layouts.executable_parameters": "layouts.executable_parameter_layouts",
    "stream.external_ready_events": "stream.external_ready_events",
    "buffer.from_host": "buffer.roundtrip_f32",
    "buffer.device_and_memory": "buffer.memory",
    "buffer.is_on_cpu": "buffer.is_on_cpu",
    "buffer.memory_layout": "buffer.memory_layout",
    "buffer.ready_event": "buffer.ready_event",
    "buffer.opaque_device_pointer": "buffer.opaque_device_pointer",
    "buffer.external_reference_count": "buffer.external_reference_count",
    "execute.single_device": "execute.smoke",
    "execute.device_complete_events": "execute.device_complete_event",
}


def counts(checks, key):
    out = {}
    for c in checks:
        s = c[key].lower()
        out[s] = out.get(s, 0) + 1
    return ", ".join(f"{n} {s}" for s, n in sorted(out.items()))


def main():
    ours_path, theirs_path, ours_status, theirs_status = sys.argv[1:5]
    ours = json.load(open(ours_path))
    print(f"  xtask conform:  {len(ours['checks'])} checks: {counts(ours['checks'], 'status')}; "
          f"exit {ours_status}; crashed checks (isolated): {', '.join(ours['crashed']) or 'none'}")
    try:
        theirs = json.load(open(theirs_path))
    except (OSError, ValueError):
        signal = -int(theirs_status) if int(theirs_status) < 0 else int(theirs_status) - 128
        print(f"  pypjrt.conform: no report: the harness died (exit {theirs_status}, signal {signal}); "
              f"{len(SAME)} checks defined")
        return
    print(f"  pypjrt.conform: {len(theirs['checks'])} checks: {counts(theirs['checks'], 'result')}; exit {theirs_status}")
    mine = {c["id"]: c for c in ours["checks"]}
    differ = []
    for c in theirs["checks"]:
        twin = SAME.get(c["id"])
        if twin is None:
            continue
        m = mine[twin]
        if c["result"].upper() != m["status"]:
            differ.append((c["id"], c["result"].upper(), c["detail"], twin, m["status"], m["detail"]))
    print(f"  judged differently: {len(differ)}")
    for pid, ps, pd, oid, os_, od in differ:
        print(f"    pypjrt {pid} {ps} ({pd[:70]})\n      conform {oid} {os_} ({od[:90]})")


main()
