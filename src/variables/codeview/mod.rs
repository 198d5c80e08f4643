//! Builds a module's [`VariablesTable`] from a PDB (MSVC and clang-cl builds of Windows code):
//! the CodeView symbols of every module in it — each procedure (`S_GPROC32`, `S_LPROC32`), its
//! blocks (`S_BLOCK32`) and the calls inlined into it (`S_INLINESITE`, their address ranges from
//! the binary annotations) — with their parameters and locals: register-relative
//! (`S_REGREL32`), frame-relative (`S_BPREL32`), in a register (`S_REGISTER`) and, in optimized
//! code, `S_LOCAL` with the ranges where it lives (`S_DEFRANGE_REGISTER`, `…_REGISTER_REL`,
//! `…_FRAMEPOINTER_REL`, `…_FULL_SCOPE`; the frame pointer named by the procedure's
//! `S_FRAMEPROC`; parts of a variable in registers, `S_DEFRANGE_SUBFIELD_REGISTER`, assembled
//! with `DW_OP_piece`), for x86, x64 and ARM64 (`registers.rs`). Types come from the TPI
//! stream (forward references resolved to their definitions). Locations are written as the DWARF expressions the rest of `variables` reads
//! (`DW_OP_breg`, `DW_OP_reg`; x86's virtual frame `VFRAME` is the address of the return
//! address, `DW_OP_call_frame_cfa` − 4), so a Windows frame is evaluated exactly as a DWARF one.
//!
//! Hostile input ends in an error or a smaller table: records that do not parse are skipped,
//! scope nesting and type chains are cut at fixed depths, cyclic type graphs resolved once.

use std::collections::HashMap;
use std::io::Cursor;
use std::sync::Arc;

use pdb::{
    FallibleIterator, IdData, IdFinder, IdIndex, IdInformation, PdbInternalSectionOffset,
    SymbolData, TypeData, TypeIndex,
};

mod locations;
mod registers;
mod types;

use locations::{inline_ranges, LocationWriter, Place, Placed};
use registers::Cpu;
use types::Types;

use super::table::{Encoding, FunctionScope, ScopeKind, TypeId, VariablesTable};

/// Deepest scope nesting and type chain followed.
const MAX_DEPTH: usize = 64;
/// Most address ranges one variable's location keeps.
const MAX_LOCATION_RANGES: usize = 4096;

// CodeView symbol kinds read here from their raw bytes (the `pdb` crate does not parse them).
const S_END: u16 = 0x0006;
const S_FRAMEPROC: u16 = 0x1012;
const S_BPREL32: u16 = 0x110b;
const S_INLINESITE_END: u16 = 0x114e;
const S_PROC_ID_END: u16 = 0x114f;
const S_DEFRANGE_REGISTER: u16 = 0x1141;
const S_DEFRANGE_FRAMEPOINTER_REL: u16 = 0x1142;
const S_DEFRANGE_SUBFIELD_REGISTER: u16 = 0x1143;
const S_DEFRANGE_FRAMEPOINTER_REL_FULL_SCOPE: u16 = 0x1144;
const S_DEFRANGE_REGISTER_REL: u16 = 0x1145;
const S_GPROC32_ID: u16 = 0x1147;
const S_LPROC32_ID: u16 = 0x1146;
const S_LPROC32_DPC_ID: u16 = 0x1156;

/// CodeView's x86 virtual frame register (`CV_ALLREG_VFRAME`): the frame FPO code computes.
const CV_VFRAME: u16 = 30006;

/// The variables table of a PDB's bytes: empty for a CPU whose registers are not mapped here.
pub fn build(data: &[u8]) -> Result<VariablesTable, String> {
    // The pdb crate meets some malformed records (a pointer mode or kind it does not know, an
    // empty type record) with a panic rather than an error: here that is the PDB's error.
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| read(data)))
        .unwrap_or_else(|_| Err("PDB: malformed type or symbol records".to_owned()))
}

/// Reads every module's procedures and the types their variables use.
fn read(data: &[u8]) -> Result<VariablesTable, String> {
    let error = |e: pdb::Error| format!("PDB: {e}");
    let mut pdb = pdb::PDB::open(Cursor::new(data)).map_err(error)?;
    let dbi = pdb.debug_information().map_err(error)?;
    let Some(cpu) = Cpu::of(dbi.machine_type().map_err(error)?) else {
        return Ok(VariablesTable::default());
    };
    let address_map = pdb.address_map().map_err(error)?;
    let type_information = pdb.type_information().map_err(error)?;
    let id_information = pdb.id_information().map_err(error)?;
    let mut types = Types::new(&type_information, cpu);
    let ids = index_ids(&id_information);
    let modules = list_modules(&dbi);
    let by_name: HashMap<String, usize> = modules
        .iter()
        .enumerate()
        .map(|(i, m)| (m.module_name().to_ascii_lowercase(), i))
        .collect();
    let strings = pdb.string_table().ok();
    let mut exports: HashMap<usize, Option<pdb::CrossModuleExports>> = HashMap::new();
    let mut functions = Vec::new();
    // A module whose records do not read costs its own variables, not the table's.
    for module in &modules {
        let Ok(Some(info)) = pdb.module_info(module) else {
            continue;
        };
        let Ok(mut symbols) = info.symbols() else {
            continue;
        };
        let imports = info.imports().unwrap_or_default();
        // An index another module exports (link-time code generation writes them): the
        // exporting module is found by name and its exports read once.
        let mut imported = |index: u32| -> Option<u32> {
            let pdb::CrossModuleRef(module, local) = imports.resolve_import(IdIndex(index)).ok()?;
            let name = strings.as_ref()?.get(module.0).ok()?.to_string();
            let exporter = *by_name.get(&name.to_ascii_lowercase())?;
            let table = exports.entry(exporter).or_insert_with(|| {
                let info = pdb.module_info(&modules[exporter]).ok()??;
                info.exports().ok()
            });
            Some(table.as_ref()?.resolve_import(local).ok()??.0)
        };
        let mut reader = ModuleReader {
            cpu,
            address_map: &address_map,
            types: &mut types,
            ids: &ids,
            imported: &mut imported,
            open: Vec::new(),
            function: None,
            taking_ranges: false,
            out: &mut functions,
        };
        let read = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            while let Ok(Some(symbol)) = symbols.next() {
                reader.symbol(&symbol);
            }
            // A procedure the stream left open ends with it.
            while !reader.open.is_empty() {
                reader.close();
            }
        }));
        if read.is_err() {
            tracing::debug!("a PDB module's symbols did not read; its variables are left out");
        }
    }
    functions.sort_by_key(|f: &FunctionScope| f.scope.ranges.first().map(|r| r.0));
    Ok(VariablesTable::new(0, functions, types.types))
}

/// The PDB's modules (compilands), up to the first that does not read.
fn list_modules<'m>(dbi: &'m pdb::DebugInformation<'_>) -> Vec<pdb::Module<'m>> {
    let mut modules = Vec::new();
    if let Ok(mut iter) = dbi.modules() {
        while let Ok(Some(module)) = iter.next() {
            modules.push(module);
        }
    }
    modules
}

/// Every ID record of the IPI stream, findable by index (up to the first that does not read).
fn index_ids<'t>(ids: &'t IdInformation<'_>) -> IdFinder<'t> {
    let mut finder = ids.finder();
    let mut iter = ids.iter();
    while let Ok(Some(_)) = iter.next() {
        finder.update(&iter);
    }
    finder
}

/// A variable read so far: its locations are written once the procedure's frame is known.
#[derive(Debug)]
struct Pending {
    name: Arc<str>,
    parameter: bool,
    type_id: Option<TypeId>,
    type_index: TypeIndex,
    /// Its type's size in bytes, measured when a part of it has a place of its own.
    size: u64,
    places: Vec<Placed>,
}

/// A scope being read.
#[derive(Debug)]
struct Building {
    kind: ScopeKind,
    ranges: Vec<(u64, u64)>,
    variables: Vec<Pending>,
    children: Vec<Building>,
}

/// What an open scope record is.
enum Open {
    Scope(Building),
    /// A scope record this reader keeps nothing of (a thunk, too deep a nesting).
    Ignored,
}

/// The procedure being read.
struct OpenFunction {
    /// Its first address (inline sites' code offsets count from it).
    start: u64,
    /// `S_FRAMEPROC`'s encoded frame pointers: (locals, parameters).
    frame: (u8, u8),
    /// Parameters the procedure's type declares, not yet seen among records that do not say
    /// whether they are one (`S_REGREL32`, `S_BPREL32`, `S_REGISTER`).
    parameters_left: u16,
}

/// Reads one module's symbol stream into functions.
struct ModuleReader<'r, 't, 's> {
    cpu: Cpu,
    address_map: &'r pdb::AddressMap<'s>,
    types: &'r mut Types<'t>,
    ids: &'r IdFinder<'t>,
    /// The global index of an index imported from another module (high bit set).
    imported: &'r mut dyn FnMut(u32) -> Option<u32>,
    open: Vec<Open>,
    function: Option<OpenFunction>,
    /// The last record was an `S_LOCAL` (or one of its ranges): `S_DEFRANGE_*` records add to it.
    taking_ranges: bool,
    out: &'r mut Vec<FunctionScope>,
}

impl ModuleReader<'_, '_, '_> {
    fn symbol(&mut self, symbol: &pdb::Symbol<'_>) {
        let kind = symbol.raw_kind();
        let raw = symbol.raw_bytes();
        let was_taking = std::mem::replace(&mut self.taking_ranges, false);
        match kind {
            S_END | S_PROC_ID_END | S_INLINESITE_END => return self.close(),
            S_FRAMEPROC => {
                // flags: after cbFrame, cbPad, offPad, cbSaveRegs, offExHdlr (u32) and
                // sectExHdlr (u16).
                if let (Some(function), Some(flags)) = (self.function.as_mut(), le_u32(raw, 24)) {
                    function.frame = (((flags >> 14) & 3) as u8, ((flags >> 16) & 3) as u8);
                }
                return;
            }
            S_BPREL32 => {
                if let (Some(offset), Some(type_index)) = (le_i32(raw, 2), le_u32(raw, 6)) {
                    let name = c_string(raw.get(10..).unwrap_or_default());
                    let place = Place::RegisterRelative(self.cpu.base_pointer(), offset);
                    self.declare_unflagged(&name, TypeIndex(type_index), place);
                }
                return;
            }
            S_DEFRANGE_REGISTER
            | S_DEFRANGE_FRAMEPOINTER_REL
            | S_DEFRANGE_SUBFIELD_REGISTER
            | S_DEFRANGE_FRAMEPOINTER_REL_FULL_SCOPE
            | S_DEFRANGE_REGISTER_REL => {
                if was_taking {
                    self.taking_ranges = true;
                    if let Some(placed) = self.def_range(kind, raw) {
                        self.add_place(placed);
                    }
                }
                return;
            }
            _ => {}
        }
        let Ok(data) = symbol.parse() else {
            if symbol.starts_scope() {
                self.open.push(Open::Ignored);
            }
            return;
        };
        match data {
            SymbolData::Procedure(procedure) => {
                let by_id = matches!(kind, S_GPROC32_ID | S_LPROC32_ID | S_LPROC32_DPC_ID);
                self.open_function(&procedure, by_id)
            }
            SymbolData::Block(block) => {
                let ranges = self.rva(block.offset).map_or_else(Vec::new, |start| {
                    vec![(start, start + u64::from(block.len))]
                });
                self.open_scope(ScopeKind::Block, ranges)
            }
            SymbolData::InlineSite(site) => {
                let name = self.inlinee_name(site.inlinee);
                let start = self.function.as_ref().map_or(0, |f| f.start);
                let mut annotations = site.annotations.iter();
                let annotations = std::iter::from_fn(|| annotations.next().ok().flatten());
                let ranges = inline_ranges(start, annotations);
                self.open_scope(ScopeKind::Inlined(name.into()), ranges)
            }
            SymbolData::Local(local) => {
                let type_index = TypeIndex(self.global(local.type_index.0));
                let type_id = self.types.convert(type_index);
                if let Some(scope) = self.innermost() {
                    scope.variables.push(Pending {
                        name: local.name.to_string().into(),
                        parameter: local.flags.isparam,
                        type_id,
                        type_index,
                        size: 0,
                        places: Vec::new(),
                    });
                    self.taking_ranges = !local.flags.isoptimizedout;
                }
            }
            SymbolData::RegisterRelative(relative) => {
                let place = Place::RegisterRelative(relative.register.0, relative.offset);
                let name = relative.name.to_string();
                self.declare_unflagged(&name, relative.type_index, place)
            }
            SymbolData::RegisterVariable(variable) => {
                let place = Place::Register(variable.register.0);
                let name = variable.name.to_string();
                self.declare_unflagged(&name, variable.type_index, place)
            }
            _ if symbol.starts_scope() => self.open.push(Open::Ignored),
            _ => {}
        }
    }

    /// The innermost scope being read, if a procedure is open.
    fn innermost(&mut self) -> Option<&mut Building> {
        self.function.as_ref()?;
        self.open.iter_mut().rev().find_map(|open| match open {
            Open::Scope(scope) => Some(scope),
            Open::Ignored => None,
        })
    }

    /// Adds a place to the variable last declared (its size measured when the place holds
    /// only a part of it).
    fn add_place(&mut self, placed: Placed) {
        let Some(variable) = self.innermost().and_then(|s| s.variables.last_mut()) else {
            return;
        };
        if variable.places.len() >= MAX_LOCATION_RANGES {
            return;
        }
        let measure = (placed.part.is_some() && variable.size == 0).then_some(variable.type_index);
        variable.places.push(placed);
        if let Some(type_index) = measure {
            let size = self.types.size(type_index);
            if let Some(variable) = self.innermost().and_then(|s| s.variables.last_mut()) {
                variable.size = size;
            }
        }
    }

    /// A variable from a record that does not say whether it is a parameter: the procedure's
    /// first ones (as many as its type declares, and `this`) are. MSVC writes an `S_REGREL32`
    /// beside the `S_LOCAL` of a variable already described: the first description is kept.
    fn declare_unflagged(&mut self, name: &str, type_index: TypeIndex, place: Place) {
        let type_index = TypeIndex(self.global(type_index.0));
        let type_id = self.types.convert(type_index);
        let in_body = self.open.len() == 1;
        let Some(function) = self.function.as_mut() else {
            return;
        };
        let mut parameter = name == "this";
        if !parameter && in_body && function.parameters_left > 0 {
            function.parameters_left -= 1;
            parameter = true;
        }
        let Some(scope) = self.innermost() else {
            return;
        };
        if scope.variables.iter().any(|v| &*v.name == name) {
            return;
        }
        scope.variables.push(Pending {
            name: name.into(),
            parameter,
            type_id,
            type_index,
            size: 0,
            places: vec![Placed {
                ranges: None,
                place,
                part: None,
            }],
        });
    }

    fn open_function(&mut self, procedure: &pdb::ProcedureSymbol<'_>, by_id: bool) {
        // A procedure left open (a missing S_END) ends where the next begins.
        while !self.open.is_empty() {
            self.close();
        }
        let Some(start) = self.rva(procedure.offset) else {
            self.open.push(Open::Ignored);
            return;
        };
        self.function = Some(OpenFunction {
            start,
            frame: (0, 0),
            parameters_left: self.parameter_count(procedure.type_index, by_id),
        });
        self.open.push(Open::Scope(Building {
            kind: ScopeKind::Function(procedure.name.to_string().into_owned()),
            ranges: vec![(start, start + u64::from(procedure.len))],
            variables: Vec::new(),
            children: Vec::new(),
        }));
    }

    fn open_scope(&mut self, kind: ScopeKind, ranges: Vec<(u64, u64)>) {
        if self.function.is_none() || self.open.len() >= MAX_DEPTH {
            self.open.push(Open::Ignored);
            return;
        }
        self.open.push(Open::Scope(Building {
            kind,
            ranges,
            variables: Vec::new(),
            children: Vec::new(),
        }));
    }

    /// Ends the innermost open scope record; the procedure's own end writes it out.
    fn close(&mut self) {
        let Some(Open::Scope(done)) = self.open.pop() else {
            return;
        };
        if let Some(parent) = self.innermost() {
            parent.children.push(done);
            return;
        }
        let Some(function) = self.function.take() else {
            return;
        };
        let frame = (
            self.cpu.frame_register(function.frame.0),
            self.cpu.frame_register(function.frame.1),
        );
        let writer = LocationWriter {
            cpu: self.cpu,
            frame,
        };
        self.out.push(FunctionScope {
            scope: writer.scope(done),
            frame_base: None,
            encoding: Encoding {
                address_size: self.cpu.address_size(),
                version: 4,
                dwarf64: false,
            },
            call_sites: Vec::new(),
        });
    }

    fn rva(&self, offset: PdbInternalSectionOffset) -> Option<u64> {
        offset.to_rva(self.address_map).map(|rva| u64::from(rva.0))
    }

    /// How many parameters the procedure's type declares (its type is an ID record's for
    /// `…_ID` procedures).
    fn parameter_count(&self, index: TypeIndex, by_id: bool) -> u16 {
        let index = if by_id {
            match self
                .ids
                .find(IdIndex(index.0))
                .and_then(|item| item.parse())
            {
                Ok(IdData::Function(f)) => f.function_type,
                Ok(IdData::MemberFunction(f)) => f.function_type,
                _ => return 0,
            }
        } else {
            index
        };
        match self.types.parse(index) {
            Some(TypeData::Procedure(p)) => p.parameter_count,
            Some(TypeData::MemberFunction(f)) => f.parameter_count,
            _ => 0,
        }
    }

    /// A type or ID index as the TPI or IPI stream has it: one imported from another module
    /// resolved through that module's exports (0, none, when it does not resolve).
    fn global(&mut self, index: u32) -> u32 {
        if index & 0x8000_0000 == 0 {
            return index;
        }
        (self.imported)(index).unwrap_or(0)
    }

    /// An inlined function's name, from the ID stream.
    fn inlinee_name(&mut self, inlinee: IdIndex) -> String {
        let inlinee = IdIndex(self.global(inlinee.0));
        match self.ids.find(inlinee).and_then(|item| item.parse()) {
            Ok(IdData::Function(f)) => f.name.to_string().into_owned(),
            Ok(IdData::MemberFunction(f)) => match self.types.parse(f.parent) {
                Some(TypeData::Class(class)) => format!("{}::{}", class.name, f.name),
                _ => f.name.to_string().into_owned(),
            },
            _ => "<inlined function>".to_owned(),
        }
    }

    /// The place and ranges an `S_DEFRANGE_*` record gives; `…_SUBFIELD_REGISTER` and a
    /// non-zero offset in the parent say where a part of the variable lives, from that offset.
    fn def_range(&self, kind: u16, raw: &[u8]) -> Option<Placed> {
        let ranges = |at: usize| self.ranges(raw, at);
        let (place, ranges, part) = match kind {
            S_DEFRANGE_REGISTER => (Place::Register(le_u16(raw, 2)?), Some(ranges(6)?), 0),
            S_DEFRANGE_FRAMEPOINTER_REL => {
                (Place::FrameRelative(le_i32(raw, 2)?), Some(ranges(6)?), 0)
            }
            S_DEFRANGE_FRAMEPOINTER_REL_FULL_SCOPE => {
                (Place::FrameRelative(le_i32(raw, 2)?), None, 0)
            }
            // register, flags (the offset in the parent in its top 12 bits), offset.
            S_DEFRANGE_REGISTER_REL => (
                Place::RegisterRelative(le_u16(raw, 2)?, le_i32(raw, 6)?),
                Some(ranges(10)?),
                le_u16(raw, 4)? >> 4,
            ),
            // register, "may have no name", the offset in the parent (12 bits of a u32).
            S_DEFRANGE_SUBFIELD_REGISTER => (
                Place::Register(le_u16(raw, 2)?),
                Some(ranges(10)?),
                (le_u32(raw, 6)? & 0xfff) as u16,
            ),
            _ => return None,
        };
        let part = (kind == S_DEFRANGE_SUBFIELD_REGISTER || part != 0).then_some(part);
        Some(Placed {
            ranges,
            place,
            part,
        })
    }

    /// A `CV_LVAR_ADDR_RANGE` at `at` (offset, section, length) and the gaps after it, as
    /// module-relative ranges.
    fn ranges(&self, raw: &[u8], at: usize) -> Option<Vec<(u64, u64)>> {
        let offset = PdbInternalSectionOffset {
            offset: le_u32(raw, at)?,
            section: le_u16(raw, at + 4)?,
        };
        let start = self.rva(offset)?;
        let end = start + u64::from(le_u16(raw, at + 6)?);
        let mut ranges = vec![(start, end)];
        let gaps = raw.get(at + 8..)?.chunks_exact(4).take(MAX_LOCATION_RANGES);
        for gap in gaps {
            let gap_start = start + u64::from(u16::from_le_bytes([gap[0], gap[1]]));
            let gap_end = gap_start + u64::from(u16::from_le_bytes([gap[2], gap[3]]));
            ranges = ranges
                .into_iter()
                .flat_map(|(s, e)| [(s, e.min(gap_start)), (s.max(gap_end), e)])
                .filter(|(s, e)| s < e)
                .collect();
        }
        Some(ranges)
    }
}

fn le_u16(raw: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(raw.get(at..at + 2)?.try_into().ok()?))
}

fn le_u32(raw: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(raw.get(at..at + 4)?.try_into().ok()?))
}

fn le_i32(raw: &[u8], at: usize) -> Option<i32> {
    le_u32(raw, at).map(|v| v as i32)
}

/// A NUL-terminated name (all of `bytes` when there is no NUL).
fn c_string(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

#[cfg(test)]
mod tests;
