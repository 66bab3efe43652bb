//! Threads that panic: what joining one gives, as an error that says what failed, so that a
//! panicking worker is never taken for one that found nothing.

use std::any::Any;

/// A thread that panicked: what it was doing, and its panic message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} failed: the thread panicked: {message}")]
pub struct Panicked {
    pub what: &'static str,
    pub message: String,
}

/// The result of joining a thread that was doing `what`: its value, or [`Panicked`].
pub fn joined<T>(result: std::thread::Result<T>, what: &'static str) -> Result<T, Panicked> {
    result.map_err(|payload| Panicked {
        what,
        message: panic_message(payload.as_ref()),
    })
}

/// Runs `f` on this thread, doing `what`: its value, or [`Panicked`] if it panicked. For work
/// whose panic must be told apart from its result while the rest goes on; `f` leaves nothing
/// half-changed that the caller reads afterwards.
pub fn caught<T>(what: &'static str, f: impl FnOnce() -> T) -> Result<T, Panicked> {
    joined(
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)),
        what,
    )
}

/// The message `panic!` was given (a `&str` or a `String`), as far as it can be known.
fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "no message".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_is_an_error_naming_what_failed() {
        let r = std::thread::scope(|s| s.spawn(|| panic!("bucket {} out of range", 7)).join());
        let e = joined::<()>(r, "finding duplicate keys").unwrap_err();
        assert_eq!(
            e.to_string(),
            "finding duplicate keys failed: the thread panicked: bucket 7 out of range"
        );
        assert_eq!(joined(Ok(3), "x"), Ok(3));
        let e = caught("checking a file", || -> u8 { panic!("no") }).unwrap_err();
        assert_eq!(
            e.to_string(),
            "checking a file failed: the thread panicked: no"
        );
    }
}
