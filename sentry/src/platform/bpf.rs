//! Building blocks of the raw seccomp BPF filters the stubs install
//! (notif's and systrap's). seccompiler cannot test
//! `seccomp_data.instruction_pointer`, which all of them do, so they are
//! written as `sock_filter`s and stored in the stub's read-only code page
//! as a `struct sock_fprog` image.

/// `struct seccomp_data` offsets.
pub const DATA_NR: u32 = 0;
pub const DATA_ARCH: u32 = 4;
pub const DATA_IP_LO: u32 = 8;
pub const DATA_IP_HI: u32 = 12;
/// The low and high halves of argument `i`.
pub const fn data_arg_lo(i: u32) -> u32 {
    16 + 8 * i
}
pub const fn data_arg_hi(i: u32) -> u32 {
    16 + 8 * i + 4
}

pub const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;
pub const X32_SYSCALL_BIT: u32 = 0x4000_0000;

pub const SECCOMP_RET_TRAP: u32 = 0x0003_0000;
pub const SECCOMP_RET_USER_NOTIF: u32 = 0x7fc0_0000;
pub const SECCOMP_RET_TRACE: u32 = 0x7ff0_0000;
pub const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;

pub const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
pub const JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
pub const JGE_K: u16 = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
pub const JGT_K: u16 = (libc::BPF_JMP | libc::BPF_JGT | libc::BPF_K) as u16;
pub const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;

pub fn stmt(code: u16, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

pub fn jump(code: u16, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

/// A filter as it sits in the stub at `at`: a `struct sock_fprog`
/// pointing at the instructions right after it.
pub fn fprog_image(f: &[libc::sock_filter], at: u64) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(16 + f.len() * 8);
    // struct sock_fprog { unsigned short len; (pad) struct sock_filter *filter; }
    bytes.extend_from_slice(&(f.len() as u16).to_le_bytes());
    bytes.extend_from_slice(&[0u8; 6]);
    bytes.extend_from_slice(&(at + 16).to_le_bytes());
    for ins in f {
        bytes.extend_from_slice(&ins.code.to_le_bytes());
        bytes.push(ins.jt);
        bytes.push(ins.jf);
        bytes.extend_from_slice(&ins.k.to_le_bytes());
    }
    bytes
}

/// Runs a filter over a `seccomp_data` as the kernel would (for the
/// filters' unit tests; only the instructions above).
#[cfg(test)]
pub fn run(f: &[libc::sock_filter], nr: u32, arch: u32, ip: u64, arg1: u64) -> u32 {
    let mut data = [0u8; 64];
    data[0..4].copy_from_slice(&nr.to_le_bytes());
    data[4..8].copy_from_slice(&arch.to_le_bytes());
    data[8..16].copy_from_slice(&ip.to_le_bytes());
    data[24..32].copy_from_slice(&arg1.to_le_bytes());
    let mut acc = 0u32;
    let mut pc = 0usize;
    loop {
        let ins = f[pc];
        match ins.code {
            LD_W_ABS => {
                let k = ins.k as usize;
                acc = u32::from_le_bytes(data[k..k + 4].try_into().unwrap());
                pc += 1;
            }
            RET_K => return ins.k,
            code => {
                let taken = match code {
                    JEQ_K => acc == ins.k,
                    JGE_K => acc >= ins.k,
                    JGT_K => acc > ins.k,
                    _ => panic!("unknown instruction"),
                };
                pc += 1 + if taken { ins.jt } else { ins.jf } as usize;
            }
        }
    }
}
