//! Module values (type 7) and module aux data (opcode 247): an opaque payload framed by typed
//! annotations, so it can be walked and checked without the module that wrote it.

use super::error::{Error, ErrorKind, Result};
use super::input::Input;
use super::primitive::{RdbStr, read_len, read_string};
use super::visit::{Item, ModuleItem, Visitor};

const EOF: u64 = 0;
const SINT: u64 = 1;
const UINT: u64 = 2;
const FLOAT: u64 = 3;
const DOUBLE: u64 = 4;
const STRING: u64 = 5;

/// Module type names are 9 characters from this alphabet, 6 bits each.
const NAME_CHARS: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// The module type name and encoding version packed into a module id.
pub fn module_name(id: u64) -> (String, u64) {
    let encver = id & 1023;
    let mut name = [0u8; 9];
    let mut rest = id >> 10;
    for c in name.iter_mut().rev() {
        *c = NAME_CHARS[(rest & 63) as usize];
        rest >>= 6;
    }
    (String::from_utf8_lossy(&name).into_owned(), encver)
}

/// Reads annotated items up to and including the EOF opcode.
pub(super) fn read_items<'a, I: Input<'a>>(inp: &mut I, v: &mut dyn Visitor) -> Result<()> {
    loop {
        let at = inp.pos();
        let item = match read_len(inp)? {
            EOF => return Ok(()),
            SINT => ModuleItem::Sint(read_len(inp)? as i64),
            UINT => ModuleItem::Uint(read_len(inp)?),
            FLOAT => ModuleItem::Float(f32::from_le_bytes(inp.read_array("module float")?)),
            DOUBLE => ModuleItem::Double(f64::from_le_bytes(inp.read_array("module double")?)),
            STRING => {
                let s: RdbStr<'_> = read_string(inp)?;
                v.item(Item::ModuleItem(ModuleItem::Str(s.elem())));
                continue;
            }
            op => {
                return Err(Error::new(at, ErrorKind::UnknownModuleOpcode(op)));
            }
        };
        v.item(Item::ModuleItem(item));
    }
}

/// A type-7 value: module id, annotated items, EOF.
pub fn read_value<'a, I: Input<'a>>(inp: &mut I, v: &mut dyn Visitor) -> Result<()> {
    let module_id = read_len(inp)?;
    v.item(Item::Module { module_id });
    read_items(inp, v)
}

/// A type-6 value (Redis 4.0 release candidates): module id, then the module's own bytes with no
/// annotations or end marker, so only a module whose layout is known can be read past. The one
/// such module is Redis's example `hellotype` (a count, then that many signed integers).
pub fn read_pre_ga_value<'a, I: Input<'a>>(inp: &mut I, v: &mut dyn Visitor) -> Result<()> {
    let at = inp.pos();
    let module_id = read_len(inp)?;
    let (name, _) = module_name(module_id);
    if name != "hellotype" {
        let msg = format!("pre-GA module value of module {name} cannot be read without the module");
        return Err(Error::new(at, ErrorKind::Unsupported(msg.into())));
    }
    v.item(Item::Module { module_id });
    let n = read_len(inp)?;
    v.item(Item::ModuleItem(ModuleItem::Uint(n)));
    for _ in 0..n {
        v.item(Item::ModuleItem(ModuleItem::Sint(read_len(inp)? as i64)));
    }
    Ok(())
}

/// Module aux data: module id, the `when` slot (as a UINT item), annotated items, EOF.
/// Returns (module id, when: 1 before the keyspace, 2 after).
pub fn read_aux<'a, I: Input<'a>>(inp: &mut I, v: &mut dyn Visitor) -> Result<(u64, u64)> {
    let module_id = read_len(inp)?;
    let at = inp.pos();
    if read_len(inp)? != UINT {
        return Err(Error::new(at, ErrorKind::BadModuleAuxWhen));
    }
    let when = read_len(inp)?;
    read_items(inp, v)?;
    Ok((module_id, when))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_module_id() {
        assert_eq!(
            module_name(0x3324F2A5ED76DC01),
            ("MyType123".to_string(), 1)
        );
    }
}
