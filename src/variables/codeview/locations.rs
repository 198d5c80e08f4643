//! Where a PDB's variables live, as the table says it: CodeView places (a register, a
//! register plus an offset, the frame pointer plus an offset) over address ranges written as
//! DWARF location expressions and lists, and the address ranges of inline sites read from their
//! binary annotations.

use pdb::BinaryAnnotation;

use super::{Building, Cpu, Pending, CV_VFRAME, MAX_LOCATION_RANGES};
use crate::variables::table::{Location, LocationRange, Scope, VariableDecl};

/// Where a variable lives over some addresses, as CodeView says it.
#[derive(Debug, Clone, Copy)]
pub(super) enum Place {
    /// In a register.
    Register(u16),
    /// In memory at a register plus an offset.
    RegisterRelative(u16, i32),
    /// In memory at the procedure's frame pointer (for parameters or locals, per `S_FRAMEPROC`)
    /// plus an offset.
    FrameRelative(i32),
}

impl Place {
    /// The place of the bytes `by` bytes into a variable at this place: memory goes on from
    /// the same address, a register holds only the start.
    fn shifted(self, by: u64) -> Option<Place> {
        let by = i32::try_from(by).ok()?;
        match self {
            Place::Register(_) => (by == 0).then_some(self),
            Place::RegisterRelative(register, offset) => {
                Some(Place::RegisterRelative(register, offset.checked_add(by)?))
            }
            Place::FrameRelative(offset) => Some(Place::FrameRelative(offset.checked_add(by)?)),
        }
    }
}

/// A place and the addresses it holds for (`None`: the whole scope).
#[derive(Debug)]
pub(super) struct Placed {
    pub(super) ranges: Option<Vec<(u64, u64)>>,
    pub(super) place: Place,
    /// A part of the variable from this offset lives here (optimized code splits a struct
    /// or a 64-bit integer on x86 into registers: `S_DEFRANGE_SUBFIELD_REGISTER`), up to the
    /// next part's offset.
    pub(super) part: Option<u16>,
}

/// Most range boundaries a variable's parts are assembled over (past it, the parts are left
/// out and the whole variable's places kept).
const MAX_PART_BOUNDARIES: usize = 512;

/// The address ranges of an inline site, from its binary annotations (code offsets count
/// from the procedure's `start`). A line record runs to the next one unless a length ends it.
pub(super) fn inline_ranges(
    start: u64,
    annotations: impl IntoIterator<Item = BinaryAnnotation>,
) -> Vec<(u64, u64)> {
    let mut ranges: Vec<(u64, u64)> = Vec::new();
    let mut offset = 0u64;
    // The record whose end is not known yet.
    let mut open: Option<u64> = None;
    for annotation in annotations {
        if ranges.len() >= MAX_LOCATION_RANGES {
            break;
        }
        match annotation {
            BinaryAnnotation::CodeOffset(at) => offset = u64::from(at),
            BinaryAnnotation::ChangeCodeOffset(delta)
            | BinaryAnnotation::ChangeCodeOffsetAndLineOffset(delta, _) => {
                offset += u64::from(delta);
                if let Some(begun) = open.replace(offset) {
                    ranges.push((begun, offset));
                }
            }
            BinaryAnnotation::ChangeCodeLength(length) => {
                if let Some(begun) = open.take() {
                    ranges.push((begun, begun + u64::from(length)));
                }
                offset += u64::from(length);
            }
            BinaryAnnotation::ChangeCodeLengthAndCodeOffset(length, delta) => {
                offset += u64::from(delta);
                if let Some(begun) = open.take() {
                    ranges.push((begun, offset));
                }
                ranges.push((offset, offset + u64::from(length)));
            }
            _ => {}
        }
    }
    // A record left open has no known end: its one instruction's start is all that is sure.
    if let Some(begun) = open {
        ranges.push((begun, begun + 1));
    }
    ranges.sort_unstable();
    // Adjacent records are one range.
    let mut merged: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
    for (s, e) in ranges {
        match merged.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => merged.push((s, e)),
        }
    }
    merged
        .into_iter()
        .map(|(s, e)| (start + s, start + e))
        .collect()
}

/// Writes a procedure's variables' places as DWARF location expressions.
pub(super) struct LocationWriter {
    pub(super) cpu: Cpu,
    /// The CodeView frame pointer for (locals, parameters).
    pub(super) frame: (Option<u16>, Option<u16>),
}

impl LocationWriter {
    pub(super) fn scope(&self, building: Building) -> Scope {
        let ranges = building.ranges;
        Scope {
            variables: building
                .variables
                .into_iter()
                .map(|v| self.variable(v, &ranges))
                .collect(),
            children: building
                .children
                .into_iter()
                .map(|c| self.scope(c))
                .collect(),
            kind: building.kind,
            ranges,
        }
    }

    fn variable(&self, pending: Pending, scope: &[(u64, u64)]) -> VariableDecl {
        let parameter = pending.parameter;
        let (parts, mut places): (Vec<Placed>, Vec<Placed>) =
            pending.places.into_iter().partition(|p| p.part.is_some());
        // A place for some addresses is more precise than one for the whole scope.
        places.sort_by_key(|p| p.ranges.is_none());
        // Where parts have places of their own, those come first.
        let mut list = self.assembled(&parts, &places, pending.size, parameter, scope);
        let location = match places.as_slice() {
            [] if parts.is_empty() => Location::None,
            [Placed {
                ranges: None,
                place,
                ..
            }] if list.is_empty() => self.expression(*place, parameter),
            _ => {
                for placed in &places {
                    let Location::Expression(expression) = self.expression(placed.place, parameter)
                    else {
                        continue;
                    };
                    let ranges = placed.ranges.as_deref().unwrap_or(scope);
                    list.extend(ranges.iter().map(|(start, end)| LocationRange {
                        start: *start,
                        end: *end,
                        expression: expression.clone(),
                    }));
                }
                list.truncate(MAX_LOCATION_RANGES);
                if list.is_empty() {
                    Location::Unsupported
                } else {
                    Location::List(list)
                }
            }
        };
        VariableDecl {
            name: pending.name,
            parameter,
            type_id: pending.type_id,
            location,
        }
    }

    /// The locations of a variable at the addresses where some of its parts have places of
    /// their own: the parts (`DW_OP_piece`s) in offset order, the bytes between them from the
    /// whole variable's place there, or unknown when it has none.
    fn assembled(
        &self,
        parts: &[Placed],
        wholes: &[Placed],
        size: u64,
        parameter: bool,
        scope: &[(u64, u64)],
    ) -> Vec<LocationRange> {
        if parts.is_empty() || size == 0 {
            return Vec::new();
        }
        fn ranges_of<'a>(p: &'a Placed, scope: &'a [(u64, u64)]) -> &'a [(u64, u64)] {
            p.ranges.as_deref().unwrap_or(scope)
        }
        let holds = |p: &Placed, address: u64| {
            ranges_of(p, scope)
                .iter()
                .any(|(start, end)| (*start..*end).contains(&address))
        };
        let mut bounds: Vec<u64> = parts
            .iter()
            .chain(wholes)
            .flat_map(|p| {
                ranges_of(p, scope)
                    .iter()
                    .flat_map(|(start, end)| [*start, *end])
            })
            .collect();
        if bounds.len() > MAX_PART_BOUNDARIES {
            return Vec::new();
        }
        bounds.sort_unstable();
        bounds.dedup();
        let mut list: Vec<LocationRange> = Vec::new();
        for window in bounds.windows(2) {
            let (start, end) = (window[0], window[1]);
            // The parts placed here, the first record for an offset kept.
            let mut here: Vec<(u64, Place)> = Vec::new();
            for part in parts.iter().filter(|p| holds(p, start)) {
                let offset = u64::from(part.part.unwrap_or(0));
                if !here.iter().any(|(o, _)| *o == offset) {
                    here.push((offset, part.place));
                }
            }
            if here.is_empty() {
                continue;
            }
            here.sort_unstable_by_key(|(offset, _)| *offset);
            let whole = wholes.iter().find(|p| holds(p, start)).map(|p| p.place);
            let expression = self.pieces(&here, whole, size, parameter);
            match list.last_mut() {
                Some(last) if last.end == start && last.expression == expression => last.end = end,
                _ => list.push(LocationRange {
                    start,
                    end,
                    expression,
                }),
            }
        }
        list
    }

    /// A composite location: `parts` (offset, place) in offset order over a variable of
    /// `size` bytes, the bytes no part covers from `whole`.
    fn pieces(
        &self,
        parts: &[(u64, Place)],
        whole: Option<Place>,
        size: u64,
        parameter: bool,
    ) -> Vec<u8> {
        let mut op = Vec::new();
        // The whole variable's bytes from `at` to `to`: memory reads on, a register holds
        // its width from the start, anything else is unknown.
        let fill = |op: &mut Vec<u8>, mut at: u64, to: u64| {
            while at < to {
                at += self.piece(op, whole.and_then(|w| w.shifted(at)), to - at, parameter);
            }
        };
        let mut at = 0;
        for (i, (offset, place)) in parts.iter().enumerate() {
            if *offset >= size {
                break;
            }
            fill(&mut op, at, *offset);
            let next = parts.get(i + 1).map_or(size, |(o, _)| (*o).min(size));
            at = offset + self.piece(&mut op, Some(*place), next - offset, parameter);
        }
        fill(&mut op, at, size);
        op
    }

    /// Writes one piece of up to `len` bytes at `place` (an empty piece, "optimized out", for
    /// none or one without a DWARF form); returns how many bytes it covers: `len`, or a
    /// register's width when that is less.
    fn piece(&self, op: &mut Vec<u8>, place: Option<Place>, len: u64, parameter: bool) -> u64 {
        let mut covered = len;
        if let Some(place) = place {
            if let Place::Register(register) = place {
                covered = len.min(u64::from(self.cpu.register_size(register)));
            }
            if let Location::Expression(expression) = self.expression(place, parameter) {
                op.extend(expression);
            }
        }
        op.push(0x93); // DW_OP_piece
        write_uleb(op, covered);
        covered
    }

    /// One place as an expression (`Unsupported` where a register has no DWARF number).
    fn expression(&self, place: Place, parameter: bool) -> Location {
        let (register, offset) = match place {
            Place::Register(register) => {
                return match self.cpu.dwarf_register(register) {
                    Some(dwarf) => Location::Expression(register_op(dwarf)),
                    None => Location::Unsupported,
                };
            }
            Place::RegisterRelative(register, offset) => (Some(register), offset),
            Place::FrameRelative(offset) => {
                let frame = if parameter {
                    self.frame.1
                } else {
                    self.frame.0
                };
                (frame, offset)
            }
        };
        match register {
            // The virtual frame is where the return address is: the CFA less its 4 bytes.
            Some(CV_VFRAME) => {
                let mut op = vec![0x9c, 0x11]; // DW_OP_call_frame_cfa, DW_OP_consts
                write_sleb(&mut op, i64::from(offset) - 4);
                op.push(0x22); // DW_OP_plus
                Location::Expression(op)
            }
            Some(register) => match self.cpu.dwarf_register(register) {
                Some(dwarf) => Location::Expression(register_relative_op(dwarf, offset)),
                None => Location::Unsupported,
            },
            None => Location::Unsupported,
        }
    }
}

/// `DW_OP_reg<n>` / `DW_OP_regx n`.
fn register_op(register: u16) -> Vec<u8> {
    if register < 32 {
        vec![0x50 + register as u8]
    } else {
        let mut op = vec![0x90];
        write_uleb(&mut op, u64::from(register));
        op
    }
}

/// `DW_OP_breg<n> offset` / `DW_OP_bregx n offset`.
fn register_relative_op(register: u16, offset: i32) -> Vec<u8> {
    let mut op = if register < 32 {
        vec![0x70 + register as u8]
    } else {
        let mut op = vec![0x92];
        write_uleb(&mut op, u64::from(register));
        op
    };
    write_sleb(&mut op, i64::from(offset));
    op
}

fn write_uleb(out: &mut Vec<u8>, mut value: u64) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn write_sleb(out: &mut Vec<u8>, mut value: i64) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        let done = (value == 0 && byte & 0x40 == 0) || (value == -1 && byte & 0x40 != 0);
        if done {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}
