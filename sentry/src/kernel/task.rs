//! A task: one application thread, its stub, and the sentry OS thread that
//! runs it. The loop is: run the stub until it traps, emulate the syscall
//! (or act on the fault), repeat.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use nix::errno::Errno;

use super::fd_table::FdTable;
use super::signals::SignalState;
use super::{
    kernel, lock, set_current, Credentials, ExeInfo, FsContext, ProcEntry, Process, ProcessParts,
    Rusage, Thread, ThreadSignals,
};
use crate::loader::{self, elf, AuxIds};
use crate::mm::MemoryManager;
use crate::platform::{Regs, StopEvent, Stub};
use crate::vfs::{FileOps, FileType, PATH_MAX};

/// Plain-old-data types that may be copied to and from application memory.
///
/// # Safety
/// Implementors must be `repr(C)` types valid for every bit pattern.
pub unsafe trait Pod: Copy {}
// SAFETY: all of these are repr(C) structs of integers.
unsafe impl Pod for libc::stat {}
unsafe impl Pod for libc::statx {}
unsafe impl Pod for libc::timespec {}
unsafe impl Pod for libc::timeval {}
unsafe impl Pod for libc::rlimit64 {}
unsafe impl Pod for libc::sysinfo {}
unsafe impl Pod for libc::utsname {}
unsafe impl Pod for libc::iovec {}
unsafe impl Pod for libc::winsize {}
unsafe impl Pod for libc::rusage {}
unsafe impl Pod for libc::tms {}
unsafe impl Pod for libc::statfs {}
unsafe impl Pod for libc::itimerspec {}
unsafe impl Pod for libc::itimerval {}
unsafe impl Pod for u64 {}
unsafe impl Pod for i64 {}
unsafe impl Pod for u32 {}
unsafe impl Pod for i32 {}
unsafe impl Pod for [i32; 2] {}
unsafe impl Pod for [u32; 2] {}
unsafe impl Pod for [u64; 4] {}
unsafe impl Pod for [i64; 2] {}

pub fn pod_bytes<T: Pod>(v: &T) -> &[u8] {
    // SAFETY: T is Pod, so viewing its bytes is fine.
    unsafe { std::slice::from_raw_parts((v as *const T).cast::<u8>(), std::mem::size_of::<T>()) }
}

pub fn pod_zeroed<T: Pod>() -> T {
    // SAFETY: Pod types are valid for the all-zero pattern.
    unsafe { std::mem::zeroed() }
}

/// How a task begins.
pub enum TaskStart {
    /// The container's first process: a fresh stub and an execve.
    Init {
        path: Vec<u8>,
        argv: Vec<Vec<u8>>,
        envp: Vec<Vec<u8>>,
    },
    /// A fork, or a new thread: the host child (or thread) of the parent's
    /// stub, parked in `pause()`.
    Forked {
        host_pid: i32,
        /// A forked stub process of its own (not a thread, not a vfork
        /// child on a borrowed thread): it gets its own control thread.
        own_process: bool,
        regs: Box<Regs>,
        child_tid: Option<u64>,
        clear_tid: u64,
        /// A vfork child on a thread of its parent's stub.
        borrowed: bool,
        /// The creating thread's FP state (XSAVE format), which Linux
        /// copies into the new thread. The host thread that made the
        /// child may not have been the creator (systrap's syscall thread,
        /// notif's control thread), so the child loads it itself.
        xstate: Option<Vec<u8>>,
        /// A forked process's copy of its parent's mirrored memory, which
        /// it maps over the parent's before it runs.
        memory: Option<crate::mm::mirror::ForkedMemory>,
    },
}

pub struct Task {
    pub proc: Arc<Process>,
    pub thread: Arc<Thread>,
    pub stub: Stub,
    pub regs: Regs,
    pub clear_child_tid: u64,
    pub robust_list: (u64, u64),
    /// Wait status to exit with; set by exit, exit_group or a fatal signal.
    pub exit: Option<i32>,
    /// A syscall (by number) that a signal interrupted with EINTR, to be
    /// restarted or not once we know whether a handler runs.
    pub restart: Option<u64>,
    /// The mask to restore after a handler (rt_sigsuspend's).
    pub saved_mask: Option<u64>,
    /// The exit ends only this thread (exit(2)), not the whole process.
    pub thread_exit: bool,
}

pub fn exit_status(code: i32) -> i32 {
    (code & 0xff) << 8
}

impl Task {
    pub fn pid(&self) -> i32 {
        self.proc.pid
    }

    pub fn tid(&self) -> i32 {
        self.thread.tid
    }

    /// The task's pid namespace (None: the sandbox's, whose numbers are
    /// the kernel's own).
    pub fn pidns(&self) -> Option<&Arc<super::pidns::PidNamespace>> {
        self.proc.pidns.as_ref()
    }

    /// Task id `global` as this task names it (0: not visible to it).
    pub fn pid_to_user(&self, global: i32) -> i32 {
        match self.pidns() {
            None => global,
            ns => lock(&kernel().tree).pid_in(ns, global),
        }
    }

    /// The task this task names `local` (> 0), by its kernel id.
    pub fn pid_from_user(&self, local: i32) -> Result<i32, Errno> {
        match self.pidns() {
            None => Ok(local),
            ns => lock(&kernel().tree).pid_from(ns, local).ok_or(Errno::ESRCH),
        }
    }

    /// A process group or session id as this task names it.
    pub fn group_to_user(&self, global: i32) -> i32 {
        super::pidns::number_in(self.pidns(), global)
    }

    /// The group this task names `local` (> 0); a name unknown here gets
    /// an id no group has.
    pub fn group_from_user(&self, local: i32) -> i32 {
        super::pidns::number_from(self.pidns(), local).unwrap_or(i32::MIN)
    }

    /// Whether `p` is in this task's view: everything from the sandbox's
    /// namespace, its own container's processes from a container's.
    pub fn sees(&self, p: &Process) -> bool {
        self.pidns().is_none() || super::pidns::same(self.pidns(), p.pidns.as_ref())
    }

    /// This task's pid as the receiver of a signal from it sees it
    /// (si_pid): 0 for a receiver in another container's namespace.
    pub fn pid_seen_by(&self, receiver: &Process) -> i32 {
        let tree = lock(&kernel().tree);
        tree.pid_in(receiver.pidns.as_ref(), self.pid())
    }

    /// Usage of this process so far: earlier images plus the live stub.
    pub fn rusage_now(&mut self) -> Rusage {
        let mut r = *lock(&self.proc.rusage_self);
        if let Ok(ru) = self.stub.rusage() {
            r.add(&Rusage::from_host(&ru));
        }
        r
    }

    // ---- application memory -------------------------------------------

    /// The address space's mirror of its private memory.
    pub fn mirror(&self) -> Arc<crate::mm::mirror::Mirror> {
        lock(&self.proc.mm()).mirror.clone()
    }

    /// Reads application memory: through the mirror when it covers the
    /// range, else from the host.
    pub fn read_mem(&self, addr: u64, buf: &mut [u8]) -> Result<(), Errno> {
        if self.mirror().read(addr, buf).is_some() {
            return Ok(());
        }
        self.stub.read_mem(addr, buf)
    }

    /// Writes application memory, as [`Task::read_mem`] reads it.
    pub fn write_mem(&self, addr: u64, data: &[u8]) -> Result<(), Errno> {
        if self.mirror().write(addr, data).is_some() {
            return Ok(());
        }
        self.stub.write_mem(addr, data)
    }

    pub fn read_bytes(&self, addr: u64, len: usize) -> Result<Vec<u8>, Errno> {
        let mut v = vec![0u8; len];
        self.read_mem(addr, &mut v)?;
        Ok(v)
    }

    pub fn write_bytes(&self, addr: u64, data: &[u8]) -> Result<(), Errno> {
        self.write_mem(addr, data)
    }

    pub fn read_obj<T: Pod>(&self, addr: u64) -> Result<T, Errno> {
        let mut v: T = pod_zeroed();
        // SAFETY: T is Pod; we fill exactly its bytes.
        let bytes = unsafe {
            std::slice::from_raw_parts_mut(
                (&mut v as *mut T).cast::<u8>(),
                std::mem::size_of::<T>(),
            )
        };
        self.read_mem(addr, bytes)?;
        Ok(v)
    }

    pub fn write_obj<T: Pod>(&self, addr: u64, v: &T) -> Result<(), Errno> {
        self.write_mem(addr, pod_bytes(v))
    }

    /// A NUL-terminated string of at most `max` bytes (ENAMETOOLONG beyond).
    pub fn read_cstr(&self, addr: u64, max: usize) -> Result<Vec<u8>, Errno> {
        if addr == 0 {
            return Err(Errno::EFAULT);
        }
        let mut out = Vec::new();
        let mut cur = addr;
        let mirror = self.mirror();
        while out.len() <= max {
            let chunk = (4096 - (cur % 4096) as usize).min(256);
            let mut whole = [0u8; 256];
            let buf = &mut whole[..chunk];
            let got = match mirror.read(cur, buf) {
                Some(()) => chunk,
                None => self.stub.read_mem_partial(cur, buf),
            };
            if got == 0 {
                return Err(Errno::EFAULT);
            }
            if let Some(nul) = buf[..got].iter().position(|&b| b == 0) {
                out.extend_from_slice(&buf[..nul]);
                if out.len() > max {
                    break;
                }
                return Ok(out);
            }
            out.extend_from_slice(&buf[..got]);
            cur += got as u64;
        }
        Err(Errno::ENAMETOOLONG)
    }

    pub fn read_path(&self, addr: u64) -> Result<Vec<u8>, Errno> {
        self.read_cstr(addr, PATH_MAX - 1)
    }

    /// argv/envp: a NULL-terminated array of string pointers.
    pub fn read_str_array(&self, addr: u64) -> Result<Vec<Vec<u8>>, Errno> {
        let mut out = Vec::new();
        if addr == 0 {
            return Ok(out);
        }
        let mut total = 0usize;
        for i in 0.. {
            if i > 0x10000 {
                return Err(Errno::E2BIG);
            }
            let p: u64 = self.read_obj(addr + 8 * i)?;
            if p == 0 {
                break;
            }
            // One string may be at most MAX_ARG_STRLEN (32 pages).
            let s = self.read_cstr(p, 128 * 1024 - 1).map_err(|e| {
                if e == Errno::ENAMETOOLONG {
                    Errno::E2BIG
                } else {
                    e
                }
            })?;
            total += s.len() + 1;
            if total > 2 * 1024 * 1024 {
                return Err(Errno::E2BIG);
            }
            out.push(s);
        }
        Ok(out)
    }

    // ---- execve ---------------------------------------------------------

    /// Replaces the program. On error the old image is untouched (errors
    /// before the point of no return), as Linux.
    pub fn execve(
        &mut self,
        path: &[u8],
        mut argv: Vec<Vec<u8>>,
        envp: Vec<Vec<u8>>,
    ) -> Result<(), Errno> {
        let k = kernel();
        let fs = lock(&self.proc.fs).clone();
        let mut target = path.to_vec();
        let mut depth = 0;
        let (exe_loc, exe) = loop {
            let loc = k.vfs.resolve(&fs.root, &fs.cwd, &target, true)?;
            let inode = loc.inode().clone();
            match inode.file_type() {
                FileType::Regular => {}
                FileType::Directory => return Err(Errno::EACCES),
                _ => return Err(Errno::EACCES),
            }
            let st = inode.stat()?;
            if st.mode & 0o111 == 0 {
                return Err(Errno::EACCES);
            }
            // A file some description may write is not run (Linux's
            // deny_write_access at exec).
            if crate::vfs::text::open_for_writing(&inode) {
                return Err(Errno::ETXTBSY);
            }
            let ops = inode.open(libc::O_RDONLY)?;
            let mut head = [0u8; 256];
            let n = ops.read_at(&mut head, 0)?;
            if let Some(sb) = loader::parse_shebang(&head[..n]) {
                let sb = sb?;
                depth += 1;
                if depth > 4 {
                    return Err(Errno::ELOOP);
                }
                let mut new_argv = vec![sb.interp.clone()];
                if let Some(a) = sb.arg {
                    new_argv.push(a);
                }
                new_argv.push(target.clone());
                new_argv.extend(argv.into_iter().skip(1));
                argv = new_argv;
                target = sb.interp;
                continue;
            }
            if !elf::is_elf(&head[..n]) {
                return Err(Errno::ENOEXEC);
            }
            break (loc, ops);
        };
        let parsed = elf::ElfFile::parse(exe.as_ref())?;
        let file_name = |loc: &crate::vfs::Location| {
            let st = loc.inode().stat().unwrap_or_default();
            crate::mm::vma::VmaName::File {
                path: loc.path(),
                dev: st.dev,
                ino: st.ino,
            }
        };
        let exe_name = file_name(&exe_loc);
        let mut interp_name = crate::mm::vma::VmaName::Anon;
        let interp: Option<Arc<dyn FileOps>> = match parsed.interp(exe.as_ref())? {
            Some(p) => {
                let loc = k.vfs.resolve(&fs.root, &fs.cwd, &p, true).map_err(|e| {
                    if e == Errno::ENOENT {
                        Errno::ENOENT
                    } else {
                        Errno::ELIBBAD
                    }
                })?;
                interp_name = file_name(&loc);
                Some(loc.inode().open(libc::O_RDONLY)?)
            }
            None => None,
        };
        let creds = lock(&self.proc.creds).clone();
        let ids = AuxIds {
            uid: creds.ruid,
            euid: creds.euid,
            gid: creds.rgid,
            egid: creds.egid,
        };
        let mut stub = Stub::spawn(&k.stub_image).map_err(|e| {
            tracing::error!("stub creation failed: {e}");
            Errno::ENOMEM
        })?;
        let stack_limit = self.proc.rlimit(libc::RLIMIT_STACK).rlim_cur;
        let loaded = loader::load_elf(
            &mut stub,
            &exe,
            interp.as_ref(),
            &argv,
            &envp,
            path,
            &ids,
            (exe_name, interp_name),
            stack_limit,
        )?;
        let control = new_control(&mut stub);
        if control.is_some() {
            let tgid = stub.pid();
            enable_fast_path(&mut stub, tgid);
        }
        // Point of no return. Other threads go with the old image.
        let mut old = std::mem::replace(&mut self.stub, stub);
        if !old.is_borrowed() {
            if let Ok(ru) = old.rusage() {
                lock(&self.proc.rusage_self).add(&Rusage::from_host(&ru));
            }
        }
        let others: Vec<Arc<Thread>> = {
            let mut threads = lock(&self.proc.threads);
            let others = threads
                .iter()
                .filter(|th| !Arc::ptr_eq(th, &self.thread))
                .cloned()
                .collect();
            threads.retain(|th| Arc::ptr_eq(th, &self.thread));
            others
        };
        for th in &others {
            th.quiet.store(true, Ordering::SeqCst);
            th.gone.store(true, Ordering::SeqCst);
        }
        // Killing any thread of the old stub kills them all; a vfork child
        // leaves its parent's stub by ending its own thread only.
        old.kill();
        for th in &others {
            interrupt_tracer(th);
        }
        {
            let mut tree = lock(&kernel().tree);
            let pid = self.proc.pid;
            tree.threads.retain(|_, (p, _)| p.pid != pid);
        }
        self.proc
            .stub_tgid
            .store(self.stub.tgid(), Ordering::SeqCst);
        lock(&self.thread.host).stub_pid = self.stub.pid();
        self.proc.set_control(control);
        // Only now is `stub_tgid` a process of our own that a fatal
        // signal may kill whole (it was the vfork parent's until here).
        self.proc.vm_guest.store(false, Ordering::SeqCst);
        self.regs = loaded.regs;
        self.proc.set_mm(Arc::new(std::sync::Mutex::new(loaded.mm)));
        lock(&self.thread.sig).altstack = (0, libc::SS_DISABLE, 0);
        self.clear_child_tid = 0;
        self.robust_list = (0, 0);
        drop(lock(&self.proc.fds).close_on_exec());
        lock(&self.proc.sig).reset_for_exec();
        crate::syscalls::clear_timers_for_exec(&self.proc);
        {
            let mut c = lock(&self.proc.creds);
            let (euid, ruid) = (c.euid, c.ruid);
            c.caps.after_exec(euid, ruid);
        }
        let exe_path = exe_loc.path();
        // The name the program was run by, not its link's target (Linux
        // takes the basename of execve's filename: /bin/sleep, a link to
        // busybox, runs as "sleep").
        let named = if path.iter().any(|&b| b != b'/') {
            path
        } else {
            &exe_path
        };
        let comm = named
            .split(|&b| b == b'/')
            .rfind(|c| !c.is_empty())
            .unwrap_or(b"")
            .iter()
            .take(15)
            .copied()
            .collect();
        let running = Some(crate::vfs::text::running(exe_loc.inode()));
        // (The old image's hold goes when this replaces it.)
        *lock(&self.proc.exe) = ExeInfo {
            path: exe_path,
            argv,
            comm,
            running,
        };
        self.proc.signal_vfork_parent();
        Ok(())
    }

    // ---- fork and threads ---------------------------------------------------

    /// Forks the stub, or adds a thread to it; returns the new host id.
    fn host_clone(&mut self, thread: bool) -> Result<i32, Errno> {
        // On the fast path the control thread does it, so the new thread
        // or process starts without this thread's filter.
        let raw = match (self.proc.control(), thread) {
            (Some(c), true) => c.clone_thread(),
            (Some(c), false) => c.fork(),
            (None, true) => self.stub.inject_clone_thread(),
            (None, false) => self.stub.inject_fork(),
        }
        .map_err(|e| {
            tracing::error!("stub clone failed: {e}");
            Errno::EAGAIN
        })?;
        if raw < 0 {
            return Err(Errno::from_raw(-raw as i32));
        }
        Ok(raw as i32)
    }

    /// The registers a new child or thread starts with: the caller's, with
    /// clone's return value 0, its stack and its TLS.
    fn child_regs(&self, flags: u64, child_stack: u64, tls: u64) -> Regs {
        let mut regs = self.regs;
        regs.rax = 0;
        if child_stack != 0 {
            regs.rsp = child_stack;
        }
        if flags & libc::CLONE_SETTLS as u64 != 0 {
            regs.fs_base = tls;
        }
        regs
    }

    /// fork/vfork/clone: the host forks the stub (copy-on-write), and a new
    /// sentry thread takes the child over. With CLONE_VM (vfork, and
    /// posix_spawn's CLONE_VM|CLONE_VFORK) the child runs instead on a new
    /// thread of the parent's stub, sharing its memory as on Linux (glibc's
    /// posix_spawn reads the child's exec error from it), until it execs
    /// into a stub of its own or exits; the parent waits meanwhile.
    pub fn fork(
        &mut self,
        flags: u64,
        child_stack: u64,
        ptid: u64,
        ctid: u64,
        tls: u64,
    ) -> Result<u64, Errno> {
        let k = kernel();
        let shared_vm = flags & libc::CLONE_VM as u64 != 0;
        // The child's copy of the mirrored memory, made while this thread
        // holds the parent in the sentry (see mm::mirror).
        let memory = if shared_vm {
            None
        } else {
            self.mirror().before_fork(&mut self.stub)?
        };
        let host_pid = self.host_clone(shared_vm)?;
        let parent = &self.proc;
        let mut tree = lock(&k.tree);
        let pid = tree.alloc_pid();
        // Its number as the parent's namespace sees it (fork's result).
        let local_pid = match &parent.pidns {
            Some(ns) => ns.alloc(&tree, pid).ok_or(Errno::EAGAIN)?,
            None => pid,
        };
        let mut sig: SignalState = lock(&parent.sig).clone();
        sig.pending = 0;
        let mut tsig = lock(&self.thread.sig).clone();
        tsig.pending = 0;
        let thread = Thread::new(pid, tsig);
        let child = Process::new(ProcessParts {
            pid,
            container: parent.container,
            container_init: false,
            pidns: parent.pidns.clone(),
            fds: lock(&parent.fds).clone(),
            fs: lock(&parent.fs).clone(),
            sig,
            creds: lock(&parent.creds).clone(),
            rlimits: *lock(&parent.rlimits),
            exe: lock(&parent.exe).clone(),
            thread: thread.clone(),
            stub_tgid: if shared_vm {
                parent.stub_tgid.load(Ordering::SeqCst)
            } else {
                host_pid
            },
            mm: {
                let mut mm = lock(&parent.mm()).clone();
                mm.mirror = Arc::new(mm.mirror.for_child());
                mm
            },
        });
        if shared_vm {
            child.set_mm(parent.mm());
            child.set_control(parent.control());
        }
        child.vm_guest.store(shared_vm, Ordering::SeqCst);
        child.nice.store(
            parent.nice.load(std::sync::atomic::Ordering::Relaxed),
            std::sync::atomic::Ordering::Relaxed,
        );
        child.timer_slack_ns.store(
            parent
                .timer_slack_ns
                .load(std::sync::atomic::Ordering::Relaxed),
            std::sync::atomic::Ordering::Relaxed,
        );
        let (pgid, sid) = tree
            .procs
            .get(&parent.pid)
            .map(|e| (e.pgid, e.sid))
            .unwrap_or((1, 1));
        tree.procs.insert(
            pid,
            ProcEntry {
                proc: child.clone(),
                ppid: parent.pid,
                pgid,
                sid,
                children: Default::default(),
                zombie: None,
                stop_report: None,
                continue_report: false,
            },
        );
        if let Some(e) = tree.procs.get_mut(&parent.pid) {
            e.children.insert(pid);
        }
        drop(tree);

        let regs = self.child_regs(flags, child_stack, tls);
        let start = TaskStart::Forked {
            host_pid,
            own_process: !shared_vm,
            regs: Box::new(regs),
            child_tid: (flags & libc::CLONE_CHILD_SETTID as u64 != 0).then_some(ctid),
            clear_tid: if flags & libc::CLONE_CHILD_CLEARTID as u64 != 0 {
                ctid
            } else {
                0
            },
            borrowed: shared_vm,
            xstate: self.stub.get_xstate().ok(),
            memory,
        };
        if let Err(e) = spawn_task(child.clone(), thread, start) {
            tracing::error!("cannot start a sentry thread: {e}");
            if !shared_vm {
                // SAFETY: kill(2) of the host child we just forked. (A
                // thread lent by our stub stays parked in pause().)
                unsafe { libc::kill(host_pid, libc::SIGKILL) };
            }
            k.exit_process(&child, libc::SIGKILL);
            return Err(Errno::EAGAIN);
        }
        if flags & libc::CLONE_PARENT_SETTID as u64 != 0 {
            let _ = self.write_obj(ptid, &local_pid);
        }
        if flags & libc::CLONE_VFORK as u64 != 0 {
            let (m, cv) = &child.vfork_done;
            let mut done = lock(m);
            // Only a fatal signal ends the wait early (Linux's vfork wait
            // is killable, not interruptible); others wait their turn.
            while !*done && !super::dying() {
                done = cv
                    .wait_timeout(done, std::time::Duration::from_millis(50))
                    .map(|r| r.0)
                    .unwrap_or_else(|p| p.into_inner().0);
            }
        }
        Ok(local_pid as u64)
    }

    /// clone(CLONE_THREAD): a new host thread in the same stub, driven by a
    /// new sentry thread.
    pub fn clone_thread(
        &mut self,
        flags: u64,
        child_stack: u64,
        ptid: u64,
        ctid: u64,
        tls: u64,
    ) -> Result<u64, Errno> {
        let k = kernel();
        let host_tid = self.host_clone(true)?;
        let mut tree = lock(&k.tree);
        let tid = tree.alloc_pid();
        let local_tid = match &self.proc.pidns {
            Some(ns) => ns.alloc(&tree, tid).ok_or(Errno::EAGAIN)?,
            None => tid,
        };
        let mut tsig = lock(&self.thread.sig).clone();
        tsig.pending = 0;
        tsig.altstack = (0, libc::SS_DISABLE, 0);
        let thread = Thread::new(tid, tsig);
        tree.threads
            .insert(tid, (self.proc.clone(), thread.clone()));
        lock(&self.proc.threads).push(thread.clone());
        drop(tree);
        let regs = self.child_regs(flags, child_stack, tls);
        // The new thread shares memory: its tid is written before it runs.
        if flags & libc::CLONE_PARENT_SETTID as u64 != 0 {
            let _ = self.write_obj(ptid, &local_tid);
        }
        if flags & libc::CLONE_CHILD_SETTID as u64 != 0 {
            let _ = self.write_obj(ctid, &local_tid);
        }
        let start = TaskStart::Forked {
            host_pid: host_tid,
            own_process: false,
            regs: Box::new(regs),
            child_tid: None,
            clear_tid: if flags & libc::CLONE_CHILD_CLEARTID as u64 != 0 {
                ctid
            } else {
                0
            },
            // A thread of a vfork child is lent by the parent's stub too;
            // otherwise the whole stub is its process's to end.
            borrowed: self.stub.is_borrowed(),
            xstate: self.stub.get_xstate().ok(),
            memory: None,
        };
        if let Err(e) = spawn_task(self.proc.clone(), thread.clone(), start) {
            tracing::error!("cannot start a sentry thread: {e}");
            thread.gone.store(true, Ordering::SeqCst);
            lock(&self.proc.threads).retain(|t| !Arc::ptr_eq(t, &thread));
            lock(&k.tree).threads.remove(&tid);
            return Err(Errno::EAGAIN);
        }
        Ok(local_tid as u64)
    }

    // ---- the loop ---------------------------------------------------------

    fn run(&mut self) {
        loop {
            if self.thread.quiet.load(Ordering::SeqCst) {
                break;
            }
            self.park_while_stopped();
            // A process that called exit_group keeps its code even if a
            // fatal signal lands while it ends (Linux's group_exit_code).
            let fatal = self.proc.fatal_signal.load(Ordering::SeqCst);
            if let Some(status) = *lock(&self.proc.group_exit) {
                self.exit = Some(status);
            } else if fatal != 0 {
                self.exit = Some(fatal & 0x7f);
            }
            // After a fast-path call `regs` hold only its number, arguments
            // and rip (see `StopEvent::NotifSyscall`).
            if self.stub.in_notified_call() && self.needs_real_regs() {
                self.real_regs();
            }
            self.deliver_pending();
            if self.exit.is_some() {
                break;
            }
            match self.stub.run(&self.regs) {
                Ok(StopEvent::Syscall) => match self.stub.get_regs() {
                    Ok(r) => {
                        self.regs = r;
                        self.patch_hot_syscall_site();
                        crate::syscalls::dispatch(self);
                    }
                    Err(_) => continue,
                },
                Ok(StopEvent::NotifSyscall(r)) => {
                    self.regs = r;
                    crate::syscalls::dispatch(self);
                }
                Ok(StopEvent::Signal {
                    signo,
                    si_code,
                    addr,
                }) => self.on_signal(signo, si_code, addr),
                Ok(StopEvent::Gone) => {
                    let sig = self.proc.fatal_signal.load(Ordering::SeqCst);
                    let group = *lock(&self.proc.group_exit);
                    self.exit = Some(match (group, sig) {
                        (Some(status), _) => status,
                        (None, 0) => {
                            // Neither an exit nor a signal the sentry sent:
                            // the host took the stub away (say why it ends).
                            tracing::warn!(
                                "pid {}: its stub process went away unasked; it ends as SIGKILLed",
                                self.pid()
                            );
                            libc::SIGKILL
                        }
                        (None, sig) => sig,
                    });
                    self.thread_exit = false;
                }
                Err(e) => {
                    tracing::error!("pid {}: platform failure: {e}", self.pid());
                    self.exit = Some(libc::SIGKILL);
                }
            }
        }
    }

    /// On systrap, rewrites a hot `mov $nr, %eax; syscall` so its calls
    /// skip the signal, if it lies in private executable memory (never in a
    /// shared mapping: the write would reach the file or other processes).
    fn patch_hot_syscall_site(&mut self) {
        let Some(site) = self.stub.hot_syscall_site() else {
            return;
        };
        let prot = lock(&self.proc.mm())
            .vmas
            .private_code_prot(site.addr, site.byte_len());
        if let Some(prot) = prot {
            // The pages' bytes will no longer be their file's.
            self.mirror().forget_files(site.addr & !0xfff, 0x2000);
            self.stub.patch_syscall_site(site, prot);
        }
    }

    /// Whether the syscall just handled on the fast path ends in more than
    /// its result: a signal to deliver or a restart decision, which need
    /// the thread's real registers.
    fn needs_real_regs(&self) -> bool {
        self.restart.is_some() || super::signal_deliverable(&self.proc, &self.thread)
    }

    /// Replaces the partial registers of a fast-path syscall with the
    /// thread's real ones (keeping the call's result and number).
    pub fn real_regs(&mut self) {
        match self.stub.take_real_regs(&self.regs) {
            Ok(r) => self.regs = r,
            // The stub is gone: the next run reports it.
            Err(e) => tracing::debug!("pid {}: real registers: {e}", self.pid()),
        }
    }

    /// Job control: a stopped process's threads wait here for SIGCONT (a
    /// fatal signal or exit_group ends the wait too).
    fn park_while_stopped(&self) {
        let (m, cv) = &self.proc.job_stopped;
        let mut stopped = lock(m);
        while *stopped
            && self.proc.fatal_signal.load(Ordering::SeqCst) == 0
            && lock(&self.proc.group_exit).is_none()
        {
            stopped = cv
                .wait_timeout(stopped, std::time::Duration::from_millis(100))
                .map(|r| r.0)
                .unwrap_or_else(|p| p.into_inner().0);
        }
    }

    /// A signal stopped the stub: a fault of the application's own code, or
    /// a stray host signal (ignored: the application only gets signals the
    /// sentry sends).
    fn on_signal(&mut self, signo: i32, si_code: i32, addr: u64) {
        // The stub stopped somewhere in application code: whatever happens
        // next (a handler frame, or simply resuming), it starts from the
        // registers it has now, not those of its last syscall.
        if let Ok(r) = self.stub.get_regs() {
            self.regs = r;
        }
        let synchronous = matches!(
            signo,
            libc::SIGSEGV
                | libc::SIGBUS
                | libc::SIGFPE
                | libc::SIGILL
                | libc::SIGTRAP
                | libc::SIGSYS
        );
        if !synchronous || si_code <= 0 {
            return;
        }
        self.fault(signo, si_code, addr);
    }
}

/// Interrupts the sentry thread driving `th` (a host call or wait gives
/// up once it sees why).
fn interrupt_tracer(th: &Thread) {
    let tracer = lock(&th.host).tracer_tid;
    if tracer > 0 && tracer != nix::unistd::gettid().as_raw() {
        // SAFETY: tgkill of one of the sentry's own threads.
        unsafe {
            libc::syscall(
                libc::SYS_tgkill,
                nix::unistd::getpid().as_raw(),
                tracer,
                super::INTERRUPT_SIGNAL,
            )
        };
    }
}

/// Starts the sentry thread of a new task.
pub fn spawn_task(
    proc: Arc<Process>,
    thread: Arc<Thread>,
    start: TaskStart,
) -> std::io::Result<()> {
    let name = format!("task-{}", thread.tid);
    std::thread::Builder::new()
        .name(name)
        .stack_size(2 << 20)
        .spawn(move || {
            let p = proc.clone();
            // A bug in one syscall handler must cost the application that
            // process, never the sandbox: the panic is logged (by the hook
            // the CLI installs) and the process dies as if SIGKILLed.
            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                task_main(proc, thread, start)
            }))
            .is_err()
            {
                kernel().kill_process(&p, libc::SIGKILL);
                kernel().exit_process(&p, libc::SIGKILL);
                set_current(None);
            }
        })?;
    Ok(())
}

fn pin_to(cpu: usize, pid: i32) {
    let mut set = nix::sched::CpuSet::new();
    if set.set(cpu).is_ok() {
        let _ = nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(pid), &set);
    }
}

fn new_task(
    proc: &Arc<Process>,
    thread: &Arc<Thread>,
    stub: Stub,
    regs: Regs,
    clear_tid: u64,
) -> Task {
    Task {
        proc: proc.clone(),
        thread: thread.clone(),
        stub,
        regs,
        clear_child_tid: clear_tid,
        robust_list: (0, 0),
        exit: None,
        restart: None,
        saved_mask: None,
        thread_exit: false,
    }
}

/// A control thread for a new stub process, when the fast path is on
/// (before the process's first thread takes the filter).
fn new_control(stub: &mut Stub) -> Option<Arc<super::stub_control::StubControl>> {
    if !crate::platform::notif::enabled() {
        return None;
    }
    match super::stub_control::StubControl::create(stub) {
        Ok(c) => Some(Arc::new(c)),
        Err(e) => {
            tracing::warn!("stub {}: no control thread: {e}", stub.pid());
            None
        }
    }
}

/// Puts a new stub thread on the seccomp-notification fast path (callers
/// check its process has a control thread, which exists only with
/// `--platform notif`); without it the thread still works, on ptrace stops.
fn enable_fast_path(stub: &mut Stub, tgid: i32) {
    if let Err(e) = stub.enable_fast_path(tgid) {
        tracing::warn!("stub {}: no fast syscall path: {e}", stub.pid());
    }
}

fn task_main(proc: Arc<Process>, thread: Arc<Thread>, start: TaskStart) {
    let k = kernel();
    set_current(Some((proc.clone(), thread.clone())));
    let cpu = k.pick_cpu();
    pin_to(cpu, 0);
    lock(&thread.host).tracer_tid = nix::unistd::gettid().as_raw();
    let task = match start {
        TaskStart::Init { path, argv, envp } => start_init(&proc, &thread, &path, argv, envp),
        TaskStart::Forked {
            host_pid,
            own_process,
            regs,
            child_tid,
            clear_tid,
            borrowed,
            xstate,
            memory,
        } => match Stub::attach_forked(host_pid) {
            Ok(mut stub) => {
                if borrowed {
                    stub.mark_borrowed();
                }
                // Until then the child maps its parent's memory file
                // shared: it must not run (nor be written to) before.
                if let Some(m) = memory {
                    let mirror = lock(&proc.mm()).mirror.clone();
                    if let Err(e) = mirror.adopt_forked(&mut stub, m) {
                        tracing::error!("pid {}: cannot map its memory: {e}", proc.pid);
                        stub.kill();
                        leave_process(&proc, &thread, libc::SIGKILL);
                        set_current(None);
                        return;
                    }
                }
                if let Some(x) = xstate {
                    if let Err(e) = stub.set_xstate(&x) {
                        tracing::warn!("pid {}: cannot copy FP state: {e}", proc.pid);
                    }
                }
                if own_process {
                    proc.set_control(new_control(&mut stub));
                }
                // Only where a control thread makes the forks and threads
                // (a borrowed thread's process has the lender's). The
                // listener is taken from the stub process's leader.
                if proc.control().is_some() {
                    enable_fast_path(&mut stub, proc.stub_tgid.load(Ordering::SeqCst));
                }
                // systrap places its threads itself.
                if !crate::platform::systrap::enabled() {
                    pin_to(cpu, stub.pid());
                }
                // Only now may others signal the stub: untraced, a kick
                // would kill it.
                lock(&thread.host).stub_pid = stub.pid();
                let t = new_task(&proc, &thread, stub, *regs, clear_tid);
                if let Some(addr) = child_tid {
                    let tid = lock(&kernel().tree).pid_in(proc.pidns.as_ref(), thread.tid);
                    let _ = t.write_obj(addr, &tid);
                }
                Ok(t)
            }
            Err(e) => {
                // Killed before its sentry thread could take it over: it dies
                // of the signal it was sent.
                let fatal = proc.fatal_signal.load(Ordering::SeqCst);
                if fatal == 0 {
                    tracing::error!("pid {}: cannot attach forked stub: {e}", proc.pid);
                }
                Err(if fatal != 0 {
                    fatal & 0x7f
                } else {
                    libc::SIGKILL
                })
            }
        },
    };
    let status = match task {
        Ok(mut t) => {
            t.run();
            if thread.quiet.load(Ordering::SeqCst) {
                // Another thread exec'd: this one vanished with the old image.
                t.stub.forget();
                set_current(None);
                return;
            }
            if t.finish_thread() {
                set_current(None);
                return;
            }
            // A borrowed thread's process usage is its lender's.
            if !t.stub.is_borrowed() {
                if let Ok(ru) = t.stub.rusage() {
                    lock(&proc.rusage_self).add(&Rusage::from_host(&ru));
                }
            }
            t.stub.kill();
            t.exit.unwrap_or(libc::SIGKILL)
        }
        Err(status) => status,
    };
    leave_process(&proc, &thread, status);
    set_current(None);
}

/// Takes `thread` out of its process. The last thread out reports the
/// process's exit: a fatal signal, else exit_group's status, else `status`.
/// Returns whether it was the last.
fn leave_process(proc: &Arc<Process>, thread: &Arc<Thread>, status: i32) -> bool {
    let k = kernel();
    thread.gone.store(true, Ordering::SeqCst);
    lock(&proc.threads).retain(|t| !Arc::ptr_eq(t, thread));
    lock(&k.tree).threads.remove(&thread.tid);
    let last = lock(&proc.threads).iter().all(|t| t.is_gone());
    if last {
        let fatal = proc.fatal_signal.load(Ordering::SeqCst);
        let status = match *lock(&proc.group_exit) {
            Some(group) => group,
            None if fatal != 0 => fatal & 0x7f,
            None => status,
        };
        k.exit_process(proc, status);
    }
    last
}

impl Task {
    /// Ends this thread alone when others live on (exit(2), or a thread of
    /// a process being torn down). Returns false when the whole process
    /// must end here.
    fn finish_thread(&mut self) -> bool {
        let k = kernel();
        let group_ending = self.proc.fatal_signal.load(Ordering::SeqCst) != 0
            || lock(&self.proc.group_exit).is_some();
        self.thread.gone.store(true, Ordering::SeqCst);
        let others_live = lock(&self.proc.threads).iter().any(|t| !t.is_gone());
        if group_ending {
            if others_live {
                // Some other thread will report the exit; make sure they all stop.
                k.stop_all_threads(&self.proc);
                self.stub.forget();
                leave_process(&self.proc, &self.thread, libc::SIGKILL);
                return true;
            }
            return false;
        }
        if !self.thread_exit || !others_live {
            return false;
        }
        // CLONE_CHILD_CLEARTID: clear the tid and wake a joiner.
        if self.clear_child_tid != 0 {
            let _ = self.write_obj(self.clear_child_tid, &0i32);
            crate::syscalls::futex_wake(self, self.clear_child_tid, 1);
        }
        // The others may all have ended while we were unregistering.
        if leave_process(&self.proc, &self.thread, self.exit.unwrap_or(0)) {
            self.stub.kill();
            return true;
        }
        self.stub.exit_thread();
        true
    }
}

fn start_init(
    proc: &Arc<Process>,
    thread: &Arc<Thread>,
    path: &[u8],
    argv: Vec<Vec<u8>>,
    envp: Vec<Vec<u8>>,
) -> Result<Task, i32> {
    let k = kernel();
    let stub = Stub::spawn(&k.stub_image).map_err(|e| {
        eprintln!("rvisor: cannot create the sandbox's first process: {e}");
        exit_status(126)
    })?;
    lock(&thread.host).stub_pid = stub.pid();
    proc.stub_tgid.store(stub.tgid(), Ordering::SeqCst);
    let regs = stub.initial_regs;
    let mut t = new_task(proc, thread, stub, regs, 0);
    let shown = String::from_utf8_lossy(path).into_owned();
    match t.execve(path, argv, envp) {
        Ok(()) => Ok(t),
        Err(e) => {
            // runc's wording, so scripts that match on it keep working.
            eprintln!(
                "rvisor: unable to start container process: exec: \"{shown}\": {}",
                e.desc()
            );
            Err(exit_status(if e == Errno::ENOENT || e == Errno::ENOTDIR {
                127
            } else {
                126
            }))
        }
    }
}

/// Creates the init process (pid 1) and starts it.
pub fn start_init_process(
    fs: FsContext,
    creds: Credentials,
    rlimits: [libc::rlimit64; super::RLIM_NLIMITS],
    fds: FdTable,
    path: Vec<u8>,
    argv: Vec<Vec<u8>>,
    envp: Vec<Vec<u8>>,
) -> std::io::Result<Arc<Process>> {
    start_top_level(
        TopLevel::FirstInit,
        None,
        fs,
        creds,
        rlimits,
        fds,
        path,
        argv,
        envp,
    )
}

/// Creates a process with no parent in the sandbox (`rvisor exec`, or the
/// init of a container that joined the sandbox), in a session and process
/// group of its own, in `container` (and its pid namespace `pidns`, if
/// it has one), and starts it. Its wait status is kept for
/// [`wait_exec_process`].
#[allow(clippy::too_many_arguments)]
pub fn start_exec_process(
    container: u32,
    init: bool,
    pidns: Option<Arc<super::pidns::PidNamespace>>,
    fs: FsContext,
    creds: Credentials,
    rlimits: [libc::rlimit64; super::RLIM_NLIMITS],
    fds: FdTable,
    path: Vec<u8>,
    argv: Vec<Vec<u8>>,
    envp: Vec<Vec<u8>>,
) -> std::io::Result<Arc<Process>> {
    let kind = if init {
        TopLevel::ContainerInit(container)
    } else {
        TopLevel::Exec(container)
    };
    start_top_level(kind, pidns, fs, creds, rlimits, fds, path, argv, envp)
}

/// What kind of process starts without a parent in the sandbox.
#[derive(Clone, Copy, PartialEq, Eq)]
enum TopLevel {
    /// Pid 1, the first container's init.
    FirstInit,
    /// The init of a container that joined the sandbox.
    ContainerInit(u32),
    /// A process `rvisor exec` adds to a container.
    Exec(u32),
}

/// How waiting for an exec'd process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecWait {
    /// It exited with this wait status (now collected).
    Exited(i32),
    /// The deadline passed first.
    TimedOut,
    /// `pid` is not an exec'd process still to be collected.
    Unknown,
}

/// Blocks until the exec'd process `pid` exits, or `deadline` passes.
pub fn wait_exec_process(pid: i32, deadline: Option<std::time::Instant>) -> ExecWait {
    let k = kernel();
    let mut tree = lock(&k.tree);
    loop {
        match tree.exec_exits.get(&pid) {
            None => return ExecWait::Unknown,
            Some(Some(status)) => {
                let status = *status;
                tree.exec_exits.remove(&pid);
                return ExecWait::Exited(status);
            }
            Some(None) => {
                tree = match deadline {
                    None => k.tree_cv.wait(tree).unwrap_or_else(|p| p.into_inner()),
                    Some(d) => {
                        let left = d.saturating_duration_since(std::time::Instant::now());
                        if left.is_zero() {
                            return ExecWait::TimedOut;
                        }
                        k.tree_cv
                            .wait_timeout(tree, left)
                            .map(|r| r.0)
                            .unwrap_or_else(|p| p.into_inner().0)
                    }
                }
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn start_top_level(
    kind: TopLevel,
    pidns: Option<Arc<super::pidns::PidNamespace>>,
    fs: FsContext,
    creds: Credentials,
    rlimits: [libc::rlimit64; super::RLIM_NLIMITS],
    fds: FdTable,
    path: Vec<u8>,
    argv: Vec<Vec<u8>>,
    envp: Vec<Vec<u8>>,
) -> std::io::Result<Arc<Process>> {
    let k = kernel();
    let mut tree = lock(&k.tree);
    let exec = kind != TopLevel::FirstInit;
    let container = match kind {
        TopLevel::FirstInit => 0,
        TopLevel::ContainerInit(c) | TopLevel::Exec(c) => c,
    };
    // Pid 1 is the init's, even when startContainer hooks run first.
    let pid = if !exec && !tree.procs.contains_key(&1) {
        1
    } else {
        loop {
            let p = tree.alloc_pid();
            if p != 1 {
                break p;
            }
        }
    };
    if exec {
        tree.exec_exits.insert(pid, None);
    }
    // A joined container's init is a pid namespace's init only when the
    // container has a namespace of its own; sharing the sandbox's (as
    // Kubernetes' shareProcessNamespace), it is an ordinary process.
    let is_init = match kind {
        TopLevel::FirstInit => true,
        TopLevel::ContainerInit(_) => pidns.is_some(),
        TopLevel::Exec(_) => false,
    };
    if let Some(ns) = &pidns {
        // A container's init is 1 in its namespace.
        let local = match kind {
            TopLevel::ContainerInit(_) => Some(ns.alloc_at(pid, 1)),
            _ => ns.alloc(&tree, pid),
        };
        if local.is_none() {
            tree.exec_exits.remove(&pid);
            return Err(std::io::Error::from_raw_os_error(libc::EAGAIN));
        }
    }
    if let (TopLevel::ContainerInit(c), true) = (kind, is_init) {
        tree.container_inits.insert(c, pid);
    }
    let thread = Thread::new(pid, ThreadSignals::default());
    let proc = Process::new(ProcessParts {
        pid,
        container,
        container_init: is_init,
        pidns,
        fds,
        fs,
        sig: SignalState::default(),
        creds,
        rlimits,
        exe: ExeInfo {
            path: path.clone(),
            argv: argv.clone(),
            comm: Vec::new(),
            running: None,
        },
        thread: thread.clone(),
        stub_tgid: 0,
        mm: MemoryManager::default(),
    });
    tree.procs.insert(
        pid,
        ProcEntry {
            proc: proc.clone(),
            ppid: 0,
            pgid: pid,
            sid: pid,
            children: Default::default(),
            zombie: None,
            stop_report: None,
            continue_report: false,
        },
    );
    drop(tree);
    if let Err(e) = spawn_task(proc.clone(), thread, TaskStart::Init { path, argv, envp }) {
        let mut tree = lock(&k.tree);
        tree.procs.remove(&pid);
        tree.exec_exits.remove(&pid);
        if let TopLevel::ContainerInit(c) = kind {
            tree.container_inits.remove(&c);
        }
        return Err(e);
    }
    Ok(proc)
}

/// Blocks until pid 1 exits; returns its wait status.
pub fn wait_for_init() -> i32 {
    let k = kernel();
    let mut tree = lock(&k.tree);
    loop {
        if let Some(status) = tree.procs.get(&1).and_then(|e| e.zombie) {
            return status;
        }
        if !tree.procs.contains_key(&1) {
            return libc::SIGKILL;
        }
        tree = k.tree_cv.wait(tree).unwrap_or_else(|p| p.into_inner());
    }
}
