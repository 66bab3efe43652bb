//! A mapped file that shrinks under the reader: touching a page past its new end raises SIGBUS,
//! which would kill the process with no word of why. Each mapping registers its address range
//! and a message naming its file; once [`install`] has run, a SIGBUS inside a registered range
//! prints that message and exits with status 2 (could not finish), and any other SIGBUS gets
//! the action it had before.
//!
//! The handler may only do what is async-signal-safe: it reads atomics and preformatted bytes
//! from a fixed table (no lock, no allocation), then calls write(2) and _exit(2).

use std::cell::UnsafeCell;
use std::mem::MaybeUninit;
use std::sync::Once;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

/// Mappings watched at once; a file mapped while all are taken is read unwatched.
const SLOTS: usize = 64;
/// Longest message kept per mapping (a longer one is cut).
const MESSAGE: usize = 1024;

const FREE: u8 = 0;
const FILLING: u8 = 1;
const READY: u8 = 2;

struct Slot {
    state: AtomicU8,
    start: AtomicUsize,
    len: AtomicUsize,
    message_len: AtomicUsize,
    /// Written only by the thread that moved `state` from FREE to FILLING, read only in READY.
    message: UnsafeCell<[u8; MESSAGE]>,
}

// SAFETY: `message` is written only while its slot is FILLING, which one thread at a time can
// claim (compare-exchange), and read only once the slot is READY (release/acquire).
unsafe impl Sync for Slot {}

static TABLE: [Slot; SLOTS] = [const {
    Slot {
        state: AtomicU8::new(FREE),
        start: AtomicUsize::new(0),
        len: AtomicUsize::new(0),
        message_len: AtomicUsize::new(0),
        message: UnsafeCell::new([0; MESSAGE]),
    }
}; SLOTS];

/// A registered mapping; dropping it ends the watch (drop it before unmapping).
pub struct Region(usize);

impl Drop for Region {
    fn drop(&mut self) {
        TABLE[self.0].state.store(FREE, Ordering::Release);
    }
}

/// Watches `len` bytes mapped at `start`: a fault there prints `message` and exits with 2.
/// None when every slot is taken.
pub fn register(start: *const u8, len: usize, message: &[u8]) -> Option<Region> {
    let (i, slot) = TABLE.iter().enumerate().find(|(_, s)| {
        s.state
            .compare_exchange(FREE, FILLING, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    })?;
    let n = message.len().min(MESSAGE);
    // SAFETY: this thread alone holds the slot in FILLING (see `Slot::message`).
    unsafe { (&mut *slot.message.get())[..n].copy_from_slice(&message[..n]) };
    slot.message_len.store(n, Ordering::Relaxed);
    slot.start.store(start as usize, Ordering::Relaxed);
    slot.len.store(len, Ordering::Relaxed);
    slot.state.store(READY, Ordering::Release);
    Some(Region(i))
}

/// The action SIGBUS had before [`install`], given back to faults outside our mappings.
struct Previous(UnsafeCell<MaybeUninit<libc::sigaction>>);
// SAFETY: written once inside `INSTALL`, before the handler that reads it can run.
unsafe impl Sync for Previous {}
static PREVIOUS: Previous = Previous(UnsafeCell::new(MaybeUninit::uninit()));
static INSTALL: Once = Once::new();

/// Installs the SIGBUS handler for the whole process (once; later calls do nothing).
pub fn install() {
    INSTALL.call_once(|| {
        // SAFETY: a zeroed sigaction is valid (empty mask, no flags); the handler has the
        // three-argument signature SA_SIGINFO calls for, and PREVIOUS is written before any
        // SIGBUS can reach it. On failure the default action stays: a signal death, as before.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_sigbus as *const () as libc::sighandler_t;
            action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            libc::sigemptyset(&mut action.sa_mask);
            let previous = (*PREVIOUS.0.get()).as_mut_ptr();
            libc::sigaction(libc::SIGBUS, &action, previous);
        }
    });
}

extern "C" fn on_sigbus(_: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo_t to an SA_SIGINFO handler.
    let (addr, code) = unsafe { ((*info).si_addr() as usize, (*info).si_code) };
    for slot in &TABLE {
        if slot.state.load(Ordering::Acquire) != READY {
            continue;
        }
        let start = slot.start.load(Ordering::Relaxed);
        if addr >= start && addr - start < slot.len.load(Ordering::Relaxed) {
            let n = slot.message_len.load(Ordering::Relaxed);
            // SAFETY: write(2) and _exit(2) are async-signal-safe; the slot is READY, so its
            // first `n` message bytes are written and stay put while the mapping is in use.
            unsafe {
                libc::write(2, slot.message.get().cast(), n);
                libc::_exit(2);
            }
        }
    }
    // Not ours: back to the previous action, which the faulting instruction meets again on
    // return; a SIGBUS sent by kill(2) does not repeat, so it is raised again.
    // SAFETY: PREVIOUS was filled by sigaction before this handler was installed.
    unsafe {
        libc::sigaction(
            libc::SIGBUS,
            (*PREVIOUS.0.get()).as_ptr(),
            std::ptr::null_mut(),
        );
        if code <= 0 {
            libc::raise(libc::SIGBUS);
        }
    }
}
