//! The types a PDB's variables use, converted from its TPI stream into the table's
//! [`TypeInfo`]s: primitives (and the pointers to them CodeView encodes in the index), pointers,
//! `const`/`volatile`, classes, structs and unions with their data members and base classes
//! (a forward reference resolved to its definition by unique name), enumerations with their
//! values, arrays and bit fields. Each type is converted once; chains are cut at
//! [`MAX_DEPTH`], and a type that contains itself refers to its own entry.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use pdb::{
    FallibleIterator, PrimitiveKind, PrimitiveType, TypeData, TypeFinder, TypeIndex,
    TypeInformation, Variant,
};

use super::{Cpu, MAX_DEPTH};
use crate::variables::table::{BaseEncoding, Member, TypeId, TypeInfo};

/// Most types one table holds.
const MAX_TYPES: usize = 1 << 20;
/// Most data members read of one struct (its field lists chained at most this many times too).
const MAX_MEMBERS: usize = 4096;

/// The types variables use, converted once each from the TPI stream.
pub(super) struct Types<'t> {
    finder: TypeFinder<'t>,
    /// Each class, struct, union and enum defined, by its unique name (else its name): a
    /// forward reference is resolved through it.
    definitions: HashMap<Vec<u8>, TypeIndex>,
    converted: HashMap<u32, TypeId>,
    pub(super) types: Vec<TypeInfo>,
    cpu: Cpu,
}

impl<'t> Types<'t> {
    /// Indexes every type record (up to the first that does not read).
    pub(super) fn new(information: &'t TypeInformation<'_>, cpu: Cpu) -> Types<'t> {
        let mut finder = information.finder();
        let mut definitions = HashMap::new();
        let mut iter = information.iter();
        while let Ok(Some(item)) = iter.next() {
            finder.update(&iter);
            let parsed = catch_unwind(AssertUnwindSafe(|| item.parse()));
            let key = match parsed {
                Ok(Ok(TypeData::Class(c))) if !c.properties.forward_reference() => {
                    c.unique_name.unwrap_or(c.name)
                }
                Ok(Ok(TypeData::Union(u))) if !u.properties.forward_reference() => {
                    u.unique_name.unwrap_or(u.name)
                }
                Ok(Ok(TypeData::Enumeration(e))) if !e.properties.forward_reference() => {
                    e.unique_name.unwrap_or(e.name)
                }
                _ => continue,
            };
            definitions.insert(key.as_bytes().to_vec(), item.index());
        }
        Types {
            finder,
            definitions,
            converted: HashMap::new(),
            types: Vec::new(),
            cpu,
        }
    }

    /// Type record `index`, if it reads (the pdb crate panics on some malformed records, a
    /// pointer mode it does not know among them: such a record does not read).
    pub(super) fn parse(&self, index: TypeIndex) -> Option<TypeData<'t>> {
        let item = self.finder.find(index).ok()?;
        catch_unwind(AssertUnwindSafe(|| item.parse().ok())).ok()?
    }

    /// The type with TPI index `index` in the table (`None`: `void`, or not readable).
    pub(super) fn convert(&mut self, index: TypeIndex) -> Option<TypeId> {
        self.convert_at(index, 0)
    }

    fn convert_at(&mut self, index: TypeIndex, depth: usize) -> Option<TypeId> {
        if let Some(id) = self.converted.get(&index.0) {
            return Some(*id);
        }
        if depth > MAX_DEPTH || self.types.len() >= MAX_TYPES {
            return None;
        }
        let data = self.parse(index)?;
        let data = match data {
            TypeData::Class(ref c) if c.properties.forward_reference() => {
                let key = c.unique_name.unwrap_or(c.name);
                match self
                    .definitions
                    .get(key.as_bytes())
                    .and_then(|i| self.parse(*i))
                {
                    Some(defined) => defined,
                    None => data,
                }
            }
            TypeData::Union(ref u) if u.properties.forward_reference() => {
                let key = u.unique_name.unwrap_or(u.name);
                match self
                    .definitions
                    .get(key.as_bytes())
                    .and_then(|i| self.parse(*i))
                {
                    Some(defined) => defined,
                    None => data,
                }
            }
            other => other,
        };
        if let TypeData::Primitive(PrimitiveType {
            kind: PrimitiveKind::Void | PrimitiveKind::NoType,
            indirection: None,
        }) = data
        {
            return None;
        }
        // Reserved before its parts are read, so a type that contains itself refers to it.
        let id = self.types.len() as TypeId;
        self.types.push(TypeInfo::Other(None));
        self.converted.insert(index.0, id);
        let info = self.info(index, data, depth);
        self.types[id as usize] = info;
        Some(id)
    }

    fn info(&mut self, index: TypeIndex, data: TypeData<'t>, depth: usize) -> TypeInfo {
        let next = depth + 1;
        match data {
            TypeData::Primitive(primitive) => self.primitive(index, primitive),
            TypeData::Pointer(pointer) => {
                let info = TypeInfo::Pointer {
                    size: self.pointer_size(&pointer),
                    target: self.convert_at(pointer.underlying_type, next),
                    reference: pointer.attributes.is_reference(),
                };
                if !pointer.attributes.is_const() || self.types.len() >= MAX_TYPES {
                    return info;
                }
                // `T *const`: CodeView marks the pointer itself; the table qualifies it.
                self.types.push(info);
                TypeInfo::Qualified {
                    qualifier: "const".to_owned(),
                    target: Some(self.types.len() as TypeId - 1),
                }
            }
            TypeData::Modifier(modifier) => {
                let target = self.convert_at(modifier.underlying_type, next);
                let qualifier = match (modifier.constant, modifier.volatile) {
                    (true, true) => "const volatile",
                    (true, false) => "const",
                    (false, true) => "volatile",
                    (false, false) => {
                        return TypeInfo::Typedef {
                            name: self.spelled(target),
                            target,
                        }
                    }
                };
                TypeInfo::Qualified {
                    qualifier: qualifier.to_owned(),
                    target,
                }
            }
            TypeData::Class(class) => {
                let keyword = match class.kind {
                    pdb::ClassKind::Class => "class",
                    pdb::ClassKind::Struct => "struct",
                    pdb::ClassKind::Interface => "interface",
                };
                TypeInfo::Struct {
                    keyword: keyword.to_owned(),
                    name: Some(class.name.to_string().into_owned()),
                    size: class.size,
                    members: self.members(class.fields, next),
                    variants: None,
                    element: None,
                }
            }
            TypeData::Union(union) => TypeInfo::Struct {
                keyword: "union".to_owned(),
                name: Some(union.name.to_string().into_owned()),
                size: union.size,
                members: self.members(Some(union.fields), next),
                variants: None,
                element: None,
            },
            TypeData::Enumeration(enumeration) => {
                let (size, signed) = match self.parse(enumeration.underlying_type) {
                    Some(TypeData::Primitive(p)) => {
                        let (_, size, encoding) = base_type(p.kind);
                        (
                            size,
                            matches!(encoding, BaseEncoding::Signed | BaseEncoding::SignedChar),
                        )
                    }
                    _ => (4, true),
                };
                TypeInfo::Enum {
                    name: Some(enumeration.name.to_string().into_owned()),
                    size,
                    signed,
                    values: self.enumerators(enumeration.fields),
                }
            }
            TypeData::Array(array) => {
                let element = self.convert_at(array.element_type, next);
                let element_size = self.byte_size(array.element_type, 0);
                let total = array.dimensions.last().copied().map(u64::from);
                TypeInfo::Array {
                    element,
                    count: total.filter(|_| element_size > 0).map(|t| t / element_size),
                }
            }
            TypeData::Bitfield(bitfield) => {
                let target = self.convert_at(bitfield.underlying_type, next);
                TypeInfo::Typedef {
                    name: self.spelled(target),
                    target,
                }
            }
            TypeData::Procedure(_) | TypeData::MemberFunction(_) => TypeInfo::Function,
            other => TypeInfo::Other(other.name().map(|n| n.to_string().into_owned())),
        }
    }

    /// A primitive type: a base type, or a pointer to one (`T_32PINT4`…: the base type's
    /// index is the low byte).
    fn primitive(&mut self, index: TypeIndex, primitive: PrimitiveType) -> TypeInfo {
        if let Some(indirection) = primitive.indirection {
            return TypeInfo::Pointer {
                size: indirection_size(indirection),
                target: self.convert_at(TypeIndex(index.0 & 0xff), MAX_DEPTH),
                reference: false,
            };
        }
        let (name, size, encoding) = base_type(primitive.kind);
        TypeInfo::Base {
            name: name.to_owned(),
            size,
            encoding,
        }
    }

    /// A class's data members and base classes, through its chained field lists.
    fn members(&mut self, fields: Option<TypeIndex>, depth: usize) -> Vec<Member> {
        let mut members = Vec::new();
        let mut next = fields;
        let mut lists = 0;
        while let Some(index) = next.take() {
            lists += 1;
            let Some(TypeData::FieldList(list)) = self.parse(index) else {
                break;
            };
            for field in list.fields {
                if members.len() >= MAX_MEMBERS {
                    return members;
                }
                let (name, offset, field_type): (Arc<str>, u64, TypeIndex) = match field {
                    TypeData::Member(m) => (m.name.to_string().into(), m.offset, m.field_type),
                    TypeData::BaseClass(b) => ("<base>".into(), u64::from(b.offset), b.base_class),
                    _ => continue,
                };
                let bits = match self.parse(field_type) {
                    Some(TypeData::Bitfield(b)) => {
                        Some((u16::from(b.position), u16::from(b.length)))
                    }
                    _ => None,
                };
                members.push(Member {
                    name,
                    offset,
                    type_id: self.convert_at(field_type, depth),
                    bits,
                });
            }
            if lists < MAX_MEMBERS {
                next = list.continuation;
            }
        }
        members
    }

    /// An enumeration's named values.
    fn enumerators(&self, fields: TypeIndex) -> Vec<(String, i64)> {
        let mut values = Vec::new();
        let mut next = Some(fields);
        while let Some(index) = next.take() {
            let Some(TypeData::FieldList(list)) = self.parse(index) else {
                break;
            };
            for field in list.fields {
                if let TypeData::Enumerate(e) = field {
                    if values.len() < MAX_MEMBERS {
                        values.push((e.name.to_string().into_owned(), variant_value(e.value)));
                    }
                }
            }
            if values.len() < MAX_MEMBERS {
                next = list.continuation;
            }
        }
        values
    }

    /// A pointer's size: as its record says, else the CPU's address size.
    fn pointer_size(&self, pointer: &pdb::PointerType) -> u8 {
        match pointer.attributes.size() {
            0 => self.cpu.address_size(),
            size => size,
        }
    }

    /// The size in bytes of TPI type `index` (0 when unknown).
    pub(super) fn size(&self, index: TypeIndex) -> u64 {
        self.byte_size(index, 0)
    }

    /// The size in bytes of TPI type `index` (0 when unknown), without converting it.
    fn byte_size(&self, index: TypeIndex, depth: usize) -> u64 {
        if depth > MAX_DEPTH {
            return 0;
        }
        match self.parse(index) {
            Some(TypeData::Primitive(p)) => match p.indirection {
                Some(indirection) => u64::from(indirection_size(indirection)),
                None => u64::from(base_type(p.kind).1),
            },
            Some(TypeData::Pointer(p)) => u64::from(self.pointer_size(&p)),
            Some(TypeData::Class(c)) if c.properties.forward_reference() => {
                let key = c.unique_name.unwrap_or(c.name);
                match self.definitions.get(key.as_bytes()) {
                    Some(defined) if *defined != index => self.byte_size(*defined, depth + 1),
                    _ => 0,
                }
            }
            Some(TypeData::Class(c)) => c.size,
            Some(TypeData::Union(u)) => u.size,
            Some(TypeData::Enumeration(e)) => self.byte_size(e.underlying_type, depth + 1),
            Some(TypeData::Modifier(m)) => self.byte_size(m.underlying_type, depth + 1),
            Some(TypeData::Array(a)) => a.dimensions.last().copied().map_or(0, u64::from),
            _ => 0,
        }
    }

    /// A converted type's name as the source spells it, for a type that only renames another.
    fn spelled(&self, id: Option<TypeId>) -> String {
        match id.and_then(|id| self.types.get(id as usize)) {
            Some(TypeInfo::Base { name, .. }) => name.clone(),
            Some(TypeInfo::Struct {
                name: Some(name), ..
            })
            | Some(TypeInfo::Enum {
                name: Some(name), ..
            }) => name.clone(),
            _ => "?".to_owned(),
        }
    }
}

/// The size of a pointer a primitive index encodes (`T_32P…`, `T_64P…`).
fn indirection_size(indirection: pdb::Indirection) -> u8 {
    match indirection {
        pdb::Indirection::Near64 => 8,
        pdb::Indirection::Near128 => 16,
        pdb::Indirection::Near32 | pdb::Indirection::Far32 => 4,
        _ => 2,
    }
}

/// A primitive as a base type: its name as MSVC spells it, its size in bytes and how its bytes
/// read (`?`, 0 bytes, for a kind not read here).
fn base_type(kind: PrimitiveKind) -> (&'static str, u8, BaseEncoding) {
    use BaseEncoding as E;
    use PrimitiveKind as K;
    match kind {
        K::Char | K::RChar => ("char", 1, E::SignedChar),
        K::UChar => ("unsigned char", 1, E::UnsignedChar),
        K::I8 => ("int8_t", 1, E::Signed),
        K::U8 => ("uint8_t", 1, E::Unsigned),
        K::WChar => ("wchar_t", 2, E::Utf),
        K::RChar16 => ("char16_t", 2, E::Utf),
        K::RChar32 => ("char32_t", 4, E::Utf),
        K::Short | K::I16 => ("short", 2, E::Signed),
        K::UShort | K::U16 => ("unsigned short", 2, E::Unsigned),
        K::Long => ("long", 4, E::Signed),
        K::ULong => ("unsigned long", 4, E::Unsigned),
        K::I32 => ("int", 4, E::Signed),
        K::U32 => ("unsigned int", 4, E::Unsigned),
        K::Quad | K::I64 => ("__int64", 8, E::Signed),
        K::UQuad | K::U64 => ("unsigned __int64", 8, E::Unsigned),
        K::Octa | K::I128 => ("__int128", 16, E::Signed),
        K::UOcta | K::U128 => ("unsigned __int128", 16, E::Unsigned),
        K::F16 => ("half", 2, E::Float),
        K::F32 => ("float", 4, E::Float),
        K::F64 => ("double", 8, E::Float),
        K::F80 => ("long double", 10, E::Float),
        K::F128 => ("__float128", 16, E::Float),
        K::Bool8 => ("bool", 1, E::Boolean),
        K::Bool16 => ("bool", 2, E::Boolean),
        K::Bool32 => ("bool", 4, E::Boolean),
        K::Bool64 => ("bool", 8, E::Boolean),
        K::HRESULT => ("HRESULT", 4, E::Signed),
        _ => ("?", 0, E::Other),
    }
}

fn variant_value(value: Variant) -> i64 {
    match value {
        Variant::U8(v) => i64::from(v),
        Variant::U16(v) => i64::from(v),
        Variant::U32(v) => i64::from(v),
        Variant::U64(v) => v as i64,
        Variant::I8(v) => i64::from(v),
        Variant::I16(v) => i64::from(v),
        Variant::I32(v) => i64::from(v),
        Variant::I64(v) => v,
    }
}
