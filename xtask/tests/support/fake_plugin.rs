//! Tiny fake PJRT plugins, compiled with the system C compiler, that crash
//! or hang exactly where a test wants: in `GetPjrtApi`, in one `PJRT_Api`
//! member, or in any member past the `struct_size` they declare.
//!
//! The `PJRT_Api` they return has the layout of these bindings: a header,
//! then one function pointer per member. Every member "succeeds" (returns
//! no error, fills nothing) unless the test says otherwise.

use std::fmt::Write as _;
use std::mem::{offset_of, size_of};
use std::path::{Path, PathBuf};
use std::process::Command;

use pjrt_sys::PJRT_Api;

/// What a member (or `GetPjrtApi`) does.
#[derive(Clone, Copy)]
pub enum Behaviour {
    Segfault,
    Abort,
    Hang,
    /// A C body of its own (`args` is the args struct as `void*`).
    C(&'static str),
}

impl Behaviour {
    fn c(self) -> &'static str {
        match self {
            // A real invalid access: a raised SIGSEGV would be swallowed by
            // the Rust runtime's handler, which only resets the action.
            Behaviour::Segfault => "{ *(volatile int*)0 = 0; return NULL; }",
            Behaviour::Abort => "{ abort(); return NULL; }",
            Behaviour::Hang => "{ for (;;) pause(); return NULL; }",
            Behaviour::C(body) => body,
        }
    }
}

pub struct Fake {
    /// The PJRT minor version it reports.
    pub minor: u32,
    /// `PJRT_Api.struct_size` in bytes (its table is always full size:
    /// members past struct_size are there, and crash when called).
    pub struct_size: usize,
    /// `GetPjrtApi` itself misbehaves.
    pub get_api: Option<Behaviour>,
    /// Members (by byte offset in `PJRT_Api`) that misbehave.
    pub members: Vec<(usize, Behaviour)>,
    /// A Layouts extension of this `struct_size`; its members past it crash.
    pub layouts_extension: Option<usize>,
    /// A `Gpu_Custom_Call` extension (no members): what makes a plugin
    /// an accelerator's to `conform`.
    pub gpu_extension: bool,
    /// A raw value for `PJRT_Api`'s second member (`priv`, then
    /// `extension_start`), e.g. garbage an old plugin left there.
    pub second_member: Option<usize>,
    /// More arguments for the compiler and linker (libraries to link).
    pub link: Vec<String>,
    /// More C source, before the members (e.g. exported functions, helpers
    /// of a member's body).
    pub extra_c: &'static str,
}

impl Fake {
    /// A well-behaved fake of PJRT `minor` whose `PJRT_Api` is as long as
    /// that version's (from the history table).
    pub fn new(minor: u32) -> Fake {
        let struct_size = pjrt_sys::history::struct_size_at("PJRT_Api", minor).expect("a known version") as usize;
        Fake {
            minor,
            struct_size,
            get_api: None,
            members: Vec::new(),
            layouts_extension: None,
            gpu_extension: false,
            second_member: None,
            link: Vec::new(),
            extra_c: "",
        }
    }

    fn source(&self) -> String {
        let first = offset_of!(PJRT_Api, PJRT_Error_Destroy);
        let slots = (size_of::<PJRT_Api>() - first) / size_of::<usize>() + 16;
        let mut c = String::from(
            "#include <stddef.h>\n#include <stdio.h>\n#include <stdlib.h>\n#include <signal.h>\n#include <unistd.h>\n\
             typedef void* (*fn)(void*);\n\
             struct version { size_t struct_size; void* ext; int major; int minor; };\n",
        );
        let _ = writeln!(c, "struct api {{ size_t struct_size; void* ext; struct version v; fn f[{slots}]; }};");
        c.push_str("struct ext { size_t struct_size; int type; void* next; fn f[16]; };\n");
        c.push_str(self.extra_c);
        c.push_str("static void* ok(void* args) { (void)args; return NULL; }\n");
        c.push_str("static void* past_the_end(void* args) { (void)args; *(volatile int*)0 = 0; return NULL; }\n");
        for (i, (_, b)) in self.members.iter().enumerate() {
            let body = b.c();
            let body = if body.starts_with('{') { body.to_string() } else { format!("{{ {body} }}") };
            let _ = writeln!(c, "static void* member_{i}(void* args) {{ (void)args; {body} }}");
        }
        c.push_str("static struct api api;\nstatic struct ext layouts;\nstatic struct ext gpu;\n");
        c.push_str("const struct api* GetPjrtApi(void) {\n");
        if let Some(b) = self.get_api {
            let _ = writeln!(c, "  {}", b.c().trim_start_matches('{').trim_end_matches('}').replace("return NULL;", ""));
        }
        let _ = writeln!(c, "  api.struct_size = {};", self.struct_size);
        let _ = writeln!(c, "  api.v.struct_size = sizeof(api.v); api.v.major = 0; api.v.minor = {};", self.minor);
        let _ = writeln!(c, "  for (int i = 0; i < {slots}; i++) api.f[i] = (40 + 8 * i < {}) ? ok : past_the_end;", self.struct_size);
        for (i, (offset, _)) in self.members.iter().enumerate() {
            let _ = writeln!(c, "  api.f[{}] = member_{i};", (offset - first) / size_of::<usize>());
        }
        if let Some(size) = self.layouts_extension {
            let _ = writeln!(c, "  layouts.struct_size = {size}; layouts.type = 4; layouts.next = NULL;");
            let _ = writeln!(c, "  for (int i = 0; i < 16; i++) layouts.f[i] = (24 + 8 * i < {size}) ? ok : past_the_end;");
            c.push_str("  api.ext = &layouts;\n");
        }
        if self.gpu_extension {
            c.push_str("  gpu.struct_size = 24; gpu.type = 0; gpu.next = api.ext; api.ext = &gpu;\n");
        }
        if let Some(value) = self.second_member {
            let _ = writeln!(c, "  api.ext = (void*){value:#x}UL;");
        }
        c.push_str("  return &api;\n}\n");
        c
    }

    /// Compiles the fake into `dir`, returning the library.
    pub fn build(&self, dir: &Path, name: &str) -> PathBuf {
        let source = dir.join(format!("{name}.c"));
        let library = dir.join(format!("{name}.so"));
        std::fs::write(&source, self.source()).unwrap();
        let out = Command::new("cc")
            .args(["-shared", "-fPIC", "-O0", "-o"])
            .arg(&library)
            .arg(&source)
            .args(&self.link)
            .output()
            .expect("cc runs");
        assert!(out.status.success(), "cc failed:\n{}\n{}", String::from_utf8_lossy(&out.stderr), self.source());
        library
    }
}
