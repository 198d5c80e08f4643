//! Builds a module's [`VariablesTable`] from its DWARF (ELF debug files, dSYMs): every
//! function's scope tree (`DW_TAG_subprogram`, `inlined_subroutine`, `lexical_block`) with its
//! `formal_parameter`s and `variable`s — names and types through `abstract_origin` — their
//! location expressions and lists, the frame base, the call sites with the values passed, and
//! the types the variables use. Hostile input ends in an error or a smaller table: type chains
//! and scope nesting are cut at fixed depths, and cyclic type graphs are resolved once.

use std::borrow::Cow;
use std::collections::HashMap;

use gimli::{AttributeValue, DebuggingInformationEntry, EndianSlice, RunTimeEndian, UnitOffset};
use symbolic::debuginfo::dwarf::{Dwarf, Endian};
use symbolic::debuginfo::Object;

use super::eval::single_register;
use super::table::{
    BaseEncoding, CallSite, Encoding, FunctionScope, Location, LocationRange, Member, Scope,
    ScopeKind, TypeId, TypeInfo, VariableDecl, VariablesTable, Variants,
};

type Reader<'a> = EndianSlice<'a, RunTimeEndian>;
type Unit<'a> = gimli::Unit<Reader<'a>>;
type Entry<'a, 'u> = DebuggingInformationEntry<'u, 'u, Reader<'a>>;

/// Deepest scope nesting and type chain followed.
const MAX_DEPTH: usize = 64;
/// Most types one table holds (a hostile file cannot make the table unbounded).
const MAX_TYPES: usize = 1 << 20;
/// Most entries of one location list kept.
const MAX_LOCATION_RANGES: usize = 4096;

/// The variables table of `object`: empty when it has no DWARF (a PDB, a Breakpad file).
pub fn build(object: &Object<'_>) -> Result<VariablesTable, String> {
    let sections: &dyn Dwarf<'_> = match object {
        Object::Elf(elf) => elf,
        Object::MachO(macho) => macho,
        Object::Wasm(wasm) => wasm,
        _ => return Ok(VariablesTable::default()),
    };
    let endian = match sections.endianity() {
        Endian::Little => RunTimeEndian::Little,
        Endian::Big => RunTimeEndian::Big,
    };
    let loaded = gimli::DwarfSections::load(|id| -> Result<Cow<'_, [u8]>, String> {
        Ok(sections
            .section(&id.name()[1..])
            .map(|s| s.data)
            .unwrap_or(Cow::Borrowed(&[])))
    })?;
    let dwarf = loaded.borrow(|data| EndianSlice::new(data, endian));
    let mut builder = Builder {
        dwarf: &dwarf,
        load_address: object.load_address(),
        types: Vec::new(),
        type_ids: HashMap::new(),
    };
    let mut functions = Vec::new();
    let mut headers = dwarf.units();
    while let Some(header) = headers.next().map_err(|e| e.to_string())? {
        let unit = dwarf.unit(header).map_err(|e| e.to_string())?;
        builder
            .unit(&unit, &mut functions)
            .map_err(|e| e.to_string())?;
    }
    functions.sort_by_key(|f: &FunctionScope| f.scope.ranges.first().map(|r| r.0));
    Ok(VariablesTable::new(
        object.load_address(),
        functions,
        builder.types,
    ))
}

struct Builder<'a, 'd> {
    dwarf: &'d gimli::Dwarf<Reader<'a>>,
    load_address: u64,
    types: Vec<TypeInfo>,
    /// Types already read, by their DIE's offset in `.debug_info`.
    type_ids: HashMap<usize, TypeId>,
}

impl<'a> Builder<'a, '_> {
    /// Every function with code in one compilation unit.
    fn unit(&mut self, unit: &Unit<'a>, out: &mut Vec<FunctionScope>) -> gimli::Result<()> {
        // Functions nested in namespaces and classes too: the whole unit, flat.
        let mut cursor = unit.entries();
        while let Some((_, entry)) = cursor.next_dfs()? {
            if entry.tag() != gimli::DW_TAG_subprogram {
                continue;
            }
            if entry.attr(gimli::DW_AT_declaration)?.is_some() {
                continue;
            }
            let offset = entry.offset();
            if let Some(function) = self.function(unit, offset)? {
                out.push(function);
            }
        }
        Ok(())
    }

    /// One concrete function: its scope tree, frame base and call sites.
    fn function(
        &mut self,
        unit: &Unit<'a>,
        offset: UnitOffset,
    ) -> gimli::Result<Option<FunctionScope>> {
        let entry = unit.entry(offset)?;
        let ranges = self.ranges(unit, &entry)?;
        if ranges.is_empty() {
            return Ok(None);
        }
        let name = self.name(unit, &entry)?.unwrap_or_default();
        let frame_base = match entry.attr_value(gimli::DW_AT_frame_base)? {
            Some(AttributeValue::Exprloc(e)) => Some(e.0.slice().to_vec()),
            _ => None,
        };
        let mut call_sites = Vec::new();
        let mut scope = Scope {
            kind: ScopeKind::Function(name),
            ranges,
            variables: Vec::new(),
            children: Vec::new(),
        };
        let mut tree = unit.entries_tree(Some(offset))?;
        let root = tree.root()?;
        self.scope_children(unit, root, &mut scope, &mut call_sites, 0)?;
        Ok(Some(FunctionScope {
            scope,
            frame_base,
            encoding: Encoding {
                address_size: unit.encoding().address_size,
                version: unit.encoding().version,
                dwarf64: unit.encoding().format == gimli::Format::Dwarf64,
            },
            call_sites,
        }))
    }

    /// The variables, nested scopes and call sites under one scope's DIE.
    fn scope_children(
        &mut self,
        unit: &Unit<'a>,
        node: gimli::EntriesTreeNode<'_, '_, '_, Reader<'a>>,
        scope: &mut Scope,
        call_sites: &mut Vec<CallSite>,
        depth: usize,
    ) -> gimli::Result<()> {
        let mut children = node.children();
        while let Some(child) = children.next()? {
            let entry = child.entry().clone();
            match entry.tag() {
                gimli::DW_TAG_formal_parameter | gimli::DW_TAG_variable => {
                    if let Some(variable) = self.variable(unit, &entry)? {
                        scope.variables.push(variable);
                    }
                }
                gimli::DW_TAG_lexical_block | gimli::DW_TAG_inlined_subroutine
                    if depth < MAX_DEPTH =>
                {
                    let mut ranges = self.ranges(unit, &entry)?;
                    let kind = if entry.tag() == gimli::DW_TAG_lexical_block {
                        if ranges.is_empty() {
                            ranges = scope.ranges.clone();
                        }
                        ScopeKind::Block
                    } else {
                        ScopeKind::Inlined(self.name(unit, &entry)?.unwrap_or_default().into())
                    };
                    let mut inner = Scope {
                        kind,
                        ranges,
                        variables: Vec::new(),
                        children: Vec::new(),
                    };
                    self.scope_children(unit, child, &mut inner, call_sites, depth + 1)?;
                    if !inner.ranges.is_empty()
                        && (!inner.variables.is_empty() || !inner.children.is_empty())
                    {
                        scope.children.push(inner);
                    }
                }
                gimli::DW_TAG_call_site | gimli::DW_TAG_GNU_call_site => {
                    if let Some(site) = self.call_site(unit, &entry, child)? {
                        call_sites.push(site);
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// A parameter or local with a frame location; `None` for static locals and declarations.
    fn variable(
        &mut self,
        unit: &Unit<'a>,
        entry: &Entry<'a, '_>,
    ) -> gimli::Result<Option<VariableDecl>> {
        if entry.attr(gimli::DW_AT_declaration)?.is_some() {
            return Ok(None);
        }
        let Some(name) = self.name(unit, entry)? else {
            return Ok(None);
        };
        let location = match entry.attr_value(gimli::DW_AT_location)? {
            Some(AttributeValue::Exprloc(e)) => {
                let bytes = e.0.slice();
                // A static local lives at a fixed address: program state, not frame state.
                if matches!(
                    bytes.first().copied().map(gimli::DwOp),
                    Some(gimli::DW_OP_addr | gimli::DW_OP_addrx | gimli::DW_OP_GNU_addr_index)
                ) && bytes.len() <= 9
                {
                    return Ok(None);
                }
                Location::Expression(bytes.to_vec())
            }
            Some(AttributeValue::LocationListsRef(offset)) => self.location_list(unit, offset)?,
            Some(AttributeValue::SecOffset(offset)) => {
                self.location_list(unit, gimli::LocationListsOffset(offset))?
            }
            _ => match entry.attr_value(gimli::DW_AT_const_value)? {
                Some(value) => constant(value),
                None => Location::None,
            },
        };
        let type_id = self.type_attr(unit, entry, 0)?;
        Ok(Some(VariableDecl {
            name: name.into(),
            parameter: entry.tag() == gimli::DW_TAG_formal_parameter,
            type_id,
            location,
        }))
    }

    fn location_list(
        &self,
        unit: &Unit<'a>,
        offset: gimli::LocationListsOffset,
    ) -> gimli::Result<Location> {
        let mut ranges = Vec::new();
        let mut entries = self.dwarf.locations(unit, offset)?;
        while let Some(entry) = entries.next()? {
            if ranges.len() >= MAX_LOCATION_RANGES {
                break;
            }
            if entry.range.begin >= entry.range.end {
                continue;
            }
            ranges.push(LocationRange {
                start: entry.range.begin.wrapping_sub(self.load_address),
                end: entry.range.end.wrapping_sub(self.load_address),
                expression: entry.data.0.slice().to_vec(),
            });
        }
        Ok(Location::List(ranges))
    }

    /// A call site's return address and the register values it passed.
    fn call_site(
        &mut self,
        unit: &Unit<'a>,
        entry: &Entry<'a, '_>,
        node: gimli::EntriesTreeNode<'_, '_, '_, Reader<'a>>,
    ) -> gimli::Result<Option<CallSite>> {
        let attr = match entry.attr_value(gimli::DW_AT_call_return_pc)? {
            Some(value) => Some(value),
            None => entry.attr_value(gimli::DW_AT_low_pc)?,
        };
        let Some(return_address) = attr.and_then(|v| self.address(unit, v)) else {
            return Ok(None);
        };
        let mut parameters = Vec::new();
        let mut children = node.children();
        while let Some(child) = children.next()? {
            let param = child.entry();
            if !matches!(
                param.tag(),
                gimli::DW_TAG_call_site_parameter | gimli::DW_TAG_GNU_call_site_parameter
            ) {
                continue;
            }
            let register = match param.attr_value(gimli::DW_AT_location)? {
                Some(AttributeValue::Exprloc(e)) => single_register(e.0.slice()),
                _ => None,
            };
            let value = match param.attr_value(gimli::DW_AT_call_value)? {
                Some(AttributeValue::Exprloc(e)) => Some(e.0.slice().to_vec()),
                _ => match param.attr_value(gimli::DW_AT_GNU_call_site_value)? {
                    Some(AttributeValue::Exprloc(e)) => Some(e.0.slice().to_vec()),
                    _ => None,
                },
            };
            if let (Some(register), Some(value)) = (register, value) {
                parameters.push((register, value));
            }
        }
        Ok(Some(CallSite {
            return_address: return_address.wrapping_sub(self.load_address),
            parameters,
        }))
    }

    fn address(&self, unit: &Unit<'a>, value: AttributeValue<Reader<'a>>) -> Option<u64> {
        match value {
            AttributeValue::Addr(a) => Some(a),
            AttributeValue::DebugAddrIndex(index) => self.dwarf.address(unit, index).ok(),
            _ => None,
        }
    }

    /// The DIE's address ranges, module-relative.
    fn ranges(&self, unit: &Unit<'a>, entry: &Entry<'a, '_>) -> gimli::Result<Vec<(u64, u64)>> {
        let mut ranges = Vec::new();
        let mut iter = self.dwarf.die_ranges(unit, entry)?;
        while let Some(range) = iter.next()? {
            if range.begin < range.end && range.begin != 0 && ranges.len() < MAX_LOCATION_RANGES {
                ranges.push((
                    range.begin.wrapping_sub(self.load_address),
                    range.end.wrapping_sub(self.load_address),
                ));
            }
        }
        Ok(ranges)
    }

    /// The DIE's name, through `abstract_origin` and `specification`.
    fn name(&self, unit: &Unit<'a>, entry: &Entry<'a, '_>) -> gimli::Result<Option<String>> {
        let mut offset = None;
        let mut current = entry.clone();
        for _ in 0..MAX_DEPTH {
            if let Some(value) = current.attr_value(gimli::DW_AT_name)? {
                let name = self.dwarf.attr_string(unit, value)?;
                return Ok(Some(name.to_string_lossy().into_owned()));
            }
            let origin = match current.attr_value(gimli::DW_AT_abstract_origin)? {
                Some(v) => Some(v),
                None => current.attr_value(gimli::DW_AT_specification)?,
            };
            match origin.and_then(|v| unit_offset(unit, v)) {
                Some(next) if Some(next) != offset => {
                    offset = Some(next);
                    current = unit.entry(next)?;
                }
                _ => return Ok(None),
            }
        }
        Ok(None)
    }

    /// The type of a variable (through `abstract_origin`) or of a type DIE's `DW_AT_type`.
    fn type_attr(
        &mut self,
        unit: &Unit<'a>,
        entry: &Entry<'a, '_>,
        depth: usize,
    ) -> gimli::Result<Option<TypeId>> {
        if depth > MAX_DEPTH {
            return Ok(None);
        }
        match entry.attr_value(gimli::DW_AT_type)? {
            Some(value) => match unit_offset(unit, value) {
                Some(offset) => self.type_id(unit, offset, depth + 1),
                None => Ok(None),
            },
            None => match entry.attr_value(gimli::DW_AT_abstract_origin)? {
                Some(value) => match unit_offset(unit, value) {
                    Some(origin) if origin != entry.offset() => {
                        let origin = unit.entry(origin)?;
                        self.type_attr(unit, &origin, depth + 1)
                    }
                    _ => Ok(None),
                },
                None => Ok(None),
            },
        }
    }

    /// The id of the type at `offset`, reading it on first use.
    fn type_id(
        &mut self,
        unit: &Unit<'a>,
        offset: UnitOffset,
        depth: usize,
    ) -> gimli::Result<Option<TypeId>> {
        let global = offset
            .to_debug_info_offset(&unit.header)
            .map_or(usize::MAX, |o| o.0);
        if let Some(id) = self.type_ids.get(&global) {
            return Ok(Some(*id));
        }
        if depth > MAX_DEPTH || self.types.len() >= MAX_TYPES {
            return Ok(None);
        }
        // Reserved before reading, so a type that refers to itself finds its id.
        let id = self.types.len() as TypeId;
        self.types.push(TypeInfo::Other(None));
        self.type_ids.insert(global, id);
        let info = self.read_type(unit, offset, depth)?;
        self.types[id as usize] = info;
        Ok(Some(id))
    }

    fn read_type(
        &mut self,
        unit: &Unit<'a>,
        offset: UnitOffset,
        depth: usize,
    ) -> gimli::Result<TypeInfo> {
        let entry = unit.entry(offset)?;
        let name = self.name(unit, &entry)?;
        let size = udata(entry.attr_value(gimli::DW_AT_byte_size)?);
        let address_size = unit.encoding().address_size;
        Ok(match entry.tag() {
            gimli::DW_TAG_base_type => TypeInfo::Base {
                name: name.unwrap_or_default(),
                size: size.unwrap_or(0).min(16) as u8,
                encoding: match entry.attr_value(gimli::DW_AT_encoding)? {
                    Some(AttributeValue::Encoding(e)) => base_encoding(e),
                    _ => BaseEncoding::Other,
                },
            },
            tag @ (gimli::DW_TAG_pointer_type
            | gimli::DW_TAG_reference_type
            | gimli::DW_TAG_rvalue_reference_type) => TypeInfo::Pointer {
                size: size.unwrap_or(address_size.into()).min(8) as u8,
                target: self.type_attr(unit, &entry, depth)?,
                reference: tag != gimli::DW_TAG_pointer_type,
            },
            tag @ (gimli::DW_TAG_structure_type
            | gimli::DW_TAG_class_type
            | gimli::DW_TAG_union_type) => TypeInfo::Struct {
                keyword: match tag {
                    gimli::DW_TAG_union_type => "union",
                    gimli::DW_TAG_class_type => "class",
                    _ => "struct",
                }
                .to_owned(),
                element: match name.as_deref() {
                    Some(n) if n.starts_with("Vec<") => self.type_parameter(unit, offset, depth)?,
                    _ => None,
                },
                name,
                size: size.unwrap_or(0),
                members: self.members(unit, offset, depth)?,
                variants: self.variant_part(unit, offset, depth)?.map(Box::new),
            },
            gimli::DW_TAG_array_type => {
                let element = self.type_attr(unit, &entry, depth)?;
                let count = self.array_count(unit, offset)?;
                TypeInfo::Array { element, count }
            }
            gimli::DW_TAG_enumeration_type => {
                let underlying = self.type_attr(unit, &entry, depth)?;
                let signed = matches!(
                    self.types.get(underlying.unwrap_or(u32::MAX) as usize),
                    Some(TypeInfo::Base {
                        encoding: BaseEncoding::Signed | BaseEncoding::SignedChar,
                        ..
                    })
                );
                TypeInfo::Enum {
                    name,
                    size: size.unwrap_or(4).min(8) as u8,
                    signed,
                    values: self.enumerators(unit, offset)?,
                }
            }
            gimli::DW_TAG_typedef => TypeInfo::Typedef {
                name: name.unwrap_or_default(),
                target: self.type_attr(unit, &entry, depth)?,
            },
            tag @ (gimli::DW_TAG_const_type
            | gimli::DW_TAG_volatile_type
            | gimli::DW_TAG_restrict_type
            | gimli::DW_TAG_atomic_type) => TypeInfo::Qualified {
                qualifier: match tag {
                    gimli::DW_TAG_const_type => "const",
                    gimli::DW_TAG_volatile_type => "volatile",
                    gimli::DW_TAG_restrict_type => "restrict",
                    _ => "_Atomic",
                }
                .to_owned(),
                target: self.type_attr(unit, &entry, depth)?,
            },
            gimli::DW_TAG_subroutine_type => TypeInfo::Function,
            _ => TypeInfo::Other(name),
        })
    }

    /// The first template type parameter of a type (`T` of `Vec<T>`).
    fn type_parameter(
        &mut self,
        unit: &Unit<'a>,
        offset: UnitOffset,
        depth: usize,
    ) -> gimli::Result<Option<TypeId>> {
        match first_child(unit, offset, gimli::DW_TAG_template_type_parameter)? {
            Some(parameter) => {
                let entry = unit.entry(parameter)?;
                self.type_attr(unit, &entry, depth)
            }
            None => Ok(None),
        }
    }

    /// A Rust enum's variant part: the discriminant member and each variant's value and fields.
    fn variant_part(
        &mut self,
        unit: &Unit<'a>,
        offset: UnitOffset,
        depth: usize,
    ) -> gimli::Result<Option<Variants>> {
        let Some(part) = first_child(unit, offset, gimli::DW_TAG_variant_part)? else {
            return Ok(None);
        };
        let discriminant = match unit.entry(part)?.attr_value(gimli::DW_AT_discr)? {
            Some(value) => unit_offset(unit, value),
            None => None,
        };
        let mut variants = Vec::new();
        let mut discriminant_member = None;
        let mut tree = unit.entries_tree(Some(part))?;
        let mut children = tree.root()?.children();
        while let Some(child) = children.next()? {
            let entry = child.entry().clone();
            match entry.tag() {
                gimli::DW_TAG_member if Some(entry.offset()) == discriminant => {
                    discriminant_member = Some(self.member(unit, &entry, depth)?);
                }
                gimli::DW_TAG_variant if variants.len() < 4096 => {
                    let value = udata(entry.attr_value(gimli::DW_AT_discr_value)?);
                    let mut fields = child.children();
                    while let Some(field) = fields.next()? {
                        let field = field.entry().clone();
                        if field.tag() == gimli::DW_TAG_member {
                            variants.push((value, self.member(unit, &field, depth)?));
                            break;
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(Some(Variants {
            discriminant: discriminant_member,
            variants,
        }))
    }

    fn members(
        &mut self,
        unit: &Unit<'a>,
        offset: UnitOffset,
        depth: usize,
    ) -> gimli::Result<Vec<Member>> {
        let mut members = Vec::new();
        let mut tree = unit.entries_tree(Some(offset))?;
        let root = tree.root()?;
        let mut children = root.children();
        let mut offsets = Vec::new();
        while let Some(child) = children.next()? {
            let entry = child.entry();
            if matches!(
                entry.tag(),
                gimli::DW_TAG_member | gimli::DW_TAG_inheritance
            ) && entry.attr(gimli::DW_AT_external)?.is_none()
                && entry.attr(gimli::DW_AT_declaration)?.is_none()
            {
                offsets.push(entry.offset());
            }
        }
        for member in offsets.into_iter().take(4096) {
            let entry = unit.entry(member)?;
            members.push(self.member(unit, &entry, depth)?);
        }
        Ok(members)
    }

    /// A data member, base class or variant field: its name, byte offset, type and bits.
    fn member(
        &mut self,
        unit: &Unit<'a>,
        entry: &Entry<'a, '_>,
        depth: usize,
    ) -> gimli::Result<Member> {
        let name = match entry.tag() {
            gimli::DW_TAG_inheritance => "<base>".to_owned(),
            _ => self.name(unit, entry)?.unwrap_or_default(),
        };
        let offset = match entry.attr_value(gimli::DW_AT_data_member_location)? {
            Some(AttributeValue::Exprloc(e)) => plus_uconst(e.0.slice()).unwrap_or(0),
            Some(value) => udata(Some(value)).unwrap_or(0),
            None => 0,
        };
        // A bit field: DWARF 4+ gives its first bit from the struct's start (read from the
        // byte holding it); DWARF 2/3's big-endian `DW_AT_bit_offset` is read as bit 0.
        let (offset, bits) = match udata(entry.attr_value(gimli::DW_AT_bit_size)?) {
            Some(width) => {
                let first =
                    udata(entry.attr_value(gimli::DW_AT_data_bit_offset)?).unwrap_or(offset * 8);
                (first / 8, Some(((first % 8) as u16, width.min(56) as u16)))
            }
            None => (offset, None),
        };
        let type_id = self.type_attr(unit, entry, depth)?;
        Ok(Member {
            name: name.into(),
            offset,
            type_id,
            bits,
        })
    }

    fn array_count(&self, unit: &Unit<'a>, offset: UnitOffset) -> gimli::Result<Option<u64>> {
        let mut tree = unit.entries_tree(Some(offset))?;
        let root = tree.root()?;
        let mut children = root.children();
        let mut count: Option<u64> = None;
        while let Some(child) = children.next()? {
            let entry = child.entry();
            if entry.tag() != gimli::DW_TAG_subrange_type {
                continue;
            }
            let this = match udata(entry.attr_value(gimli::DW_AT_count)?) {
                Some(n) => Some(n),
                None => udata(entry.attr_value(gimli::DW_AT_upper_bound)?).map(|u| {
                    let lower = udata(entry.attr_value(gimli::DW_AT_lower_bound).ok().flatten());
                    (u + 1).saturating_sub(lower.unwrap_or(0))
                }),
            };
            // A multi-dimensional array is read as its flattened elements.
            count = match (count, this) {
                (None, n) => n,
                (Some(a), Some(b)) => Some(a.saturating_mul(b)),
                (Some(_), None) => None,
            };
        }
        Ok(count)
    }

    fn enumerators(
        &self,
        unit: &Unit<'a>,
        offset: UnitOffset,
    ) -> gimli::Result<Vec<(String, i64)>> {
        let mut values = Vec::new();
        let mut tree = unit.entries_tree(Some(offset))?;
        let root = tree.root()?;
        let mut children = root.children();
        while let Some(child) = children.next()? {
            let entry = child.entry();
            if entry.tag() != gimli::DW_TAG_enumerator || values.len() >= 4096 {
                continue;
            }
            let name = self.name(unit, entry)?.unwrap_or_default();
            let value = match entry.attr_value(gimli::DW_AT_const_value)? {
                Some(AttributeValue::Sdata(v)) => v,
                Some(AttributeValue::Udata(v)) => v as i64,
                Some(AttributeValue::Data1(v)) => v.into(),
                Some(AttributeValue::Data2(v)) => v.into(),
                Some(AttributeValue::Data4(v)) => v.into(),
                Some(AttributeValue::Data8(v)) => v as i64,
                _ => continue,
            };
            values.push((name, value));
        }
        Ok(values)
    }
}

/// A reference to a DIE of the same unit.
fn unit_offset(unit: &Unit<'_>, value: AttributeValue<Reader<'_>>) -> Option<UnitOffset> {
    match value {
        AttributeValue::UnitRef(offset) => Some(offset),
        AttributeValue::DebugInfoRef(offset) => offset.to_unit_offset(&unit.header),
        _ => None,
    }
}

/// The first child of the entry at `offset` with this tag.
fn first_child(
    unit: &Unit<'_>,
    offset: UnitOffset,
    tag: gimli::DwTag,
) -> gimli::Result<Option<UnitOffset>> {
    let mut tree = unit.entries_tree(Some(offset))?;
    let mut children = tree.root()?.children();
    while let Some(child) = children.next()? {
        if child.entry().tag() == tag {
            return Ok(Some(child.entry().offset()));
        }
    }
    Ok(None)
}

fn udata(value: Option<AttributeValue<Reader<'_>>>) -> Option<u64> {
    match value? {
        AttributeValue::Udata(v) => Some(v),
        AttributeValue::Sdata(v) => u64::try_from(v).ok(),
        AttributeValue::Data1(v) => Some(v.into()),
        AttributeValue::Data2(v) => Some(v.into()),
        AttributeValue::Data4(v) => Some(v.into()),
        AttributeValue::Data8(v) => Some(v),
        _ => None,
    }
}

/// `DW_AT_const_value` as little-endian bytes.
fn constant(value: AttributeValue<Reader<'_>>) -> Location {
    let bytes = match value {
        AttributeValue::Block(block) => block.slice().to_vec(),
        AttributeValue::Sdata(v) => v.to_le_bytes().to_vec(),
        AttributeValue::Udata(v) | AttributeValue::Data8(v) => v.to_le_bytes().to_vec(),
        AttributeValue::Data1(v) => vec![v],
        AttributeValue::Data2(v) => v.to_le_bytes().to_vec(),
        AttributeValue::Data4(v) => v.to_le_bytes().to_vec(),
        _ => return Location::None,
    };
    Location::Constant(bytes)
}

/// `DW_OP_plus_uconst N` (a member offset written as an expression).
fn plus_uconst(bytes: &[u8]) -> Option<u64> {
    let (&op, rest) = bytes.split_first()?;
    if gimli::DwOp(op) != gimli::DW_OP_plus_uconst {
        return None;
    }
    let mut reader = EndianSlice::new(rest, RunTimeEndian::Little);
    gimli::Reader::read_uleb128(&mut reader).ok()
}

fn base_encoding(encoding: gimli::DwAte) -> BaseEncoding {
    match encoding {
        gimli::DW_ATE_signed => BaseEncoding::Signed,
        gimli::DW_ATE_unsigned => BaseEncoding::Unsigned,
        gimli::DW_ATE_signed_char => BaseEncoding::SignedChar,
        gimli::DW_ATE_unsigned_char => BaseEncoding::UnsignedChar,
        gimli::DW_ATE_float => BaseEncoding::Float,
        gimli::DW_ATE_boolean => BaseEncoding::Boolean,
        gimli::DW_ATE_UTF => BaseEncoding::Utf,
        _ => BaseEncoding::Other,
    }
}
