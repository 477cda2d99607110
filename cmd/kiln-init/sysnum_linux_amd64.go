package main

// sysFinitModule is finit_module(2) (arch/x86/entry/syscalls/syscall_64.tbl);
// the syscall package does not list it for amd64.
const sysFinitModule = 313
