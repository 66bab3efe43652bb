//! The machinery of reading a file fast, around the format in [`crate::rdb`]: mapping it and
//! handing its pages back as a walk passes them, the thread pipeline that works on values in
//! file order, and the index that finds a key stored twice.

pub mod dup_keys;
pub mod mapped;
pub mod ordered;
pub mod sigbus;
pub mod thread;
pub mod walk;
