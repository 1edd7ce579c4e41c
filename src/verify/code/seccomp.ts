// A seccomp filter for the sandbox (handed to bwrap --seccomp): system calls that a stdin/stdout
// program never needs and that are the usual doors to kernel bugs or to other processes fail with
// EPERM. The namespaces and the missing capabilities already make most of them useless; this narrows
// what of the kernel an untrusted program can reach at all. A deny-list, not an allow-list, so that
// ordinary Python (threads, fork, subprocess, mmap, sockets on the private loopback) keeps working.
// Classic BPF, built by hand: check the architecture, refuse the x32 ABI, then compare the number.

const AUDIT_ARCH_X86_64 = 0xc000003e;
const X32_SYSCALL_BIT = 0x40000000;

const SECCOMP_RET_ALLOW = 0x7fff0000;
const SECCOMP_RET_ERRNO = 0x00050000;
const SECCOMP_RET_KILL_PROCESS = 0x80000000;
const EPERM = 1;

// BPF opcodes (linux/bpf_common.h)
const BPF_LD_W_ABS = 0x00 | 0x00 | 0x20; // BPF_LD | BPF_W | BPF_ABS
const BPF_JMP_JEQ_K = 0x05 | 0x10 | 0x00; // BPF_JMP | BPF_JEQ | BPF_K
const BPF_JMP_JGE_K = 0x05 | 0x30 | 0x00; // BPF_JMP | BPF_JGE | BPF_K
const BPF_RET_K = 0x06 | 0x00;

/** x86_64 numbers of the refused calls, by name (for the docs and the tests). */
export const DENIED_X86_64: Record<string, number> = {
  ptrace: 101,
  syslog: 103,
  modify_ldt: 154,
  pivot_root: 155,
  chroot: 161,
  acct: 163,
  mount: 165,
  umount2: 166,
  swapon: 167,
  swapoff: 168,
  reboot: 169,
  iopl: 172,
  ioperm: 173,
  init_module: 175,
  delete_module: 176,
  quotactl: 179,
  lookup_dcookie: 212,
  kexec_load: 246,
  add_key: 248,
  request_key: 249,
  keyctl: 250,
  unshare: 272,
  perf_event_open: 298,
  fanotify_init: 300,
  name_to_handle_at: 303,
  open_by_handle_at: 304,
  setns: 308,
  process_vm_readv: 310,
  process_vm_writev: 311,
  finit_module: 313,
  kexec_file_load: 320,
  bpf: 321,
  userfaultfd: 323,
  io_uring_setup: 425,
  io_uring_enter: 426,
  io_uring_register: 427,
  open_tree: 428,
  move_mount: 429,
  fsopen: 430,
  fsconfig: 431,
  fsmount: 432,
  fspick: 433,
  mount_setattr: 442,
};

function insn(code: number, jt: number, jf: number, k: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt16LE(code, 0);
  b.writeUInt8(jt, 2);
  b.writeUInt8(jf, 3);
  b.writeUInt32LE(k >>> 0, 4);
  return b;
}

/** The filter as bwrap reads it (an array of struct sock_filter), or null where we have none. */
export function seccompFilter(arch: string = process.arch): Buffer | null {
  if (arch !== "x64") return null; // numbers differ per architecture; other hosts rely on the rest
  const denied = [...new Set(Object.values(DENIED_X86_64))].sort((a, b) => a - b);
  const prog: Buffer[] = [];
  // [0] arch; a foreign-arch call (e.g. int 0x80 i386 entry) kills the process.
  prog.push(insn(BPF_LD_W_ABS, 0, 0, 4));
  prog.push(insn(BPF_JMP_JEQ_K, 1, 0, AUDIT_ARCH_X86_64));
  prog.push(insn(BPF_RET_K, 0, 0, SECCOMP_RET_KILL_PROCESS));
  // [3] syscall number; the x32 ABI aliases every call, so it is refused wholesale.
  prog.push(insn(BPF_LD_W_ABS, 0, 0, 0));
  const n = denied.length;
  // Jump targets are relative to the next instruction: after the checks come ALLOW then DENY.
  prog.push(insn(BPF_JMP_JGE_K, n + 1, 0, X32_SYSCALL_BIT));
  denied.forEach((nr, i) => prog.push(insn(BPF_JMP_JEQ_K, n - i, 0, nr)));
  prog.push(insn(BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW));
  prog.push(insn(BPF_RET_K, 0, 0, SECCOMP_RET_ERRNO | EPERM));
  return Buffer.concat(prog);
}
