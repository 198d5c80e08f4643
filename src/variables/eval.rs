//! Where a variable's bytes are in one frame of a crash: its DWARF location expression evaluated
//! with gimli against the registers the unwinder recovered for that frame and the memory the
//! dump captured. A register the unwinder did not restore in a caller frame is "register not
//! recovered", never guessed; memory outside the dump is "not captured"; a location list with no
//! entry for the frame's address, or an empty piece, is "optimized out".

use std::borrow::Cow;

use gimli::{EndianSlice, EvaluationResult, LittleEndian, Location as PieceLocation, Value};
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

use super::table::{Encoding, FunctionScope, Location};

/// Why a value (or part of one) cannot be shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unavailable {
    /// The compiler kept no location for it at this address.
    OptimizedOut,
    /// It lives in memory the dump did not capture.
    NotCaptured,
    /// It lives in (or is computed from) a register the unwinder could not recover for this
    /// frame.
    RegisterNotRecovered,
    /// Its location uses a DWARF operation this reader does not evaluate.
    Unsupported,
}

impl Unavailable {
    /// As shown to a person: `optimized out`, `not captured`…
    pub fn as_str(self) -> &'static str {
        match self {
            Unavailable::OptimizedOut => "optimized out",
            Unavailable::NotCaptured => "not captured",
            Unavailable::RegisterNotRecovered => "register not recovered",
            Unavailable::Unsupported => "unsupported location",
        }
    }
}

/// One frame of the crash as location expressions see it.
pub trait FrameContext {
    /// DWARF register `register` in this frame, if the unwinder recovered it.
    fn register(&self, register: u16) -> Option<u64>;
    /// The frame's canonical frame address: the caller's stack pointer before the call.
    fn cfa(&self) -> Option<u64>;
    /// The value register `register` had when this frame's function was entered, as the
    /// caller's call site recorded it (`DW_OP_entry_value`).
    fn entry_value(&self, register: u16) -> Option<u64>;
    /// Where the module's link-time address `address` was loaded.
    fn relocate(&self, address: u64) -> u64;
}

/// The memory a dump captured.
pub trait CapturedMemory {
    /// `len` bytes at `address`, if the dump holds all of them (borrowed from the dump where
    /// it can be).
    fn read(&self, address: u64, len: usize) -> Option<Cow<'_, [u8]>>;
}

/// The bytes of one value, each known or not (and why not); most values are a word or two, kept
/// without an allocation.
pub type ValueBytes = SmallVec<[Result<u8, Unavailable>; 32]>;

/// Most bytes of one value read (a type may claim any size; what is shown of a value — 64
/// elements, members to depth 3 — lies in its first bytes, and anything past them reads as
/// unavailable).
pub const MAX_VALUE_BYTES: u64 = 64 << 10;

/// Most operations one expression may execute (a backwards `DW_OP_skip` loops forever).
const MAX_STEPS: u32 = 10_000;

/// The `size` bytes (at most [`MAX_VALUE_BYTES`]) of a variable with `location` at `pc`
/// (module-relative) in the frame.
pub fn variable_bytes(
    location: &Location,
    function: &FunctionScope,
    pc: u64,
    size: u64,
    frame: &dyn FrameContext,
    memory: &dyn CapturedMemory,
) -> Result<ValueBytes, Unavailable> {
    let size = size.min(MAX_VALUE_BYTES);
    let expression = match location {
        Location::None => return Err(Unavailable::OptimizedOut),
        Location::Unsupported => return Err(Unavailable::Unsupported),
        Location::Constant(bytes) => {
            let mut out = ValueBytes::new();
            push_sized(&mut out, bytes.iter().map(|b| Ok(*b)), size);
            return Ok(out);
        }
        Location::Expression(e) => e.as_slice(),
        Location::List(list) => match list.iter().find(|r| (r.start..r.end).contains(&pc)) {
            Some(range) => range.expression.as_slice(),
            None => return Err(Unavailable::OptimizedOut),
        },
    };
    if expression.is_empty() {
        return Err(Unavailable::OptimizedOut);
    }
    let mut bytes = None;
    evaluate(expression, function, frame, memory, 0, &mut |pieces| {
        bytes = Some(assemble(pieces, size, frame, memory))
    })?;
    bytes.ok_or(Unavailable::Unsupported)
}

/// The value an expression computes (a call site's `DW_AT_call_value`, a frame base).
pub fn evaluate_value(
    expression: &[u8],
    function: &FunctionScope,
    frame: &dyn FrameContext,
    memory: &dyn CapturedMemory,
) -> Option<u64> {
    let mut value = None;
    evaluate(expression, function, frame, memory, 0, &mut |pieces| {
        value = first_value(pieces, frame).ok()
    })
    .ok()?;
    value
}

/// The value an expression's first piece holds, or is the address of.
fn first_value(pieces: &Pieces<'_>, frame: &dyn FrameContext) -> Result<u64, Unavailable> {
    match pieces.first().map(|p| p.location) {
        Some(PieceLocation::Address { address }) => Ok(address),
        Some(PieceLocation::Register { register }) => frame
            .register(register.0)
            .ok_or(Unavailable::RegisterNotRecovered),
        Some(PieceLocation::Value { value }) => {
            value.to_u64(!0).map_err(|_| Unavailable::Unsupported)
        }
        _ => Err(Unavailable::Unsupported),
    }
}

/// An expression's evaluation, its stacks and pieces in fixed arrays rather than on the heap
/// (an expression deeper than them is "unsupported", never a larger allocation).
struct OnStack;

impl<R: gimli::Reader> gimli::EvaluationStorage<R> for OnStack {
    type Stack = [Value; 32];
    type ExpressionStack = [(R, R); 4];
    type Result = [gimli::Piece<R>; 16];
}

/// What an expression evaluated to: where each piece of the value is.
type Pieces<'e> = [gimli::Piece<EndianSlice<'e, LittleEndian>>];

/// Evaluates `bytes` in the frame and hands its pieces to `then` (the evaluation, a few
/// kilobytes of fixed stacks, stays where it is rather than being returned).
fn evaluate<'e>(
    bytes: &'e [u8],
    function: &FunctionScope,
    frame: &dyn FrameContext,
    memory: &dyn CapturedMemory,
    depth: u8,
    then: &mut dyn FnMut(&Pieces<'e>),
) -> Result<(), Unavailable> {
    if let Some(location) = simple_location(bytes, function, frame, memory, depth) {
        let piece = gimli::Piece {
            size_in_bits: None,
            bit_offset: None,
            location: location?,
        };
        then(std::slice::from_ref(&piece));
        return Ok(());
    }
    evaluate_with_gimli(bytes, function, frame, memory, depth, then)
}

/// The commonest locations worked out directly, at a fraction of an evaluation's cost: a
/// register (`DW_OP_regN`); the CFA (`DW_OP_call_frame_cfa`, a frame base); a register or the
/// frame base plus an offset (`DW_OP_bregN`, `DW_OP_fbreg`), as an address or, with
/// `DW_OP_stack_value`, as the value; wrapped at the address size where gimli wraps them.
/// `None`: any other expression, for gimli.
fn simple_location<'e>(
    bytes: &'e [u8],
    function: &FunctionScope,
    frame: &dyn FrameContext,
    memory: &dyn CapturedMemory,
    depth: u8,
) -> Option<Result<PieceLocation<EndianSlice<'e, LittleEndian>>, Unavailable>> {
    let (&op, rest) = bytes.split_first()?;
    let mask = match function.encoding.address_size {
        size @ 1..=7 => (1u64 << (8 * u32::from(size))) - 1,
        _ => !0,
    };
    match op {
        0x50..=0x6f if rest.is_empty() => {
            let register = gimli::Register(u16::from(op - 0x50));
            return Some(Ok(PieceLocation::Register { register }));
        }
        0x9c if rest.is_empty() => {
            let cfa = frame.cfa().ok_or(Unavailable::RegisterNotRecovered);
            return Some(cfa.map(|cfa| PieceLocation::Address {
                address: cfa & mask,
            }));
        }
        0x70..=0x8f | 0x91 => {}
        _ => return None,
    }
    let mut operands = EndianSlice::new(rest, LittleEndian);
    let offset = gimli::Reader::read_sleb128(&mut operands).ok()?;
    let stack_value = match operands.slice() {
        [] => false,
        [0x9f] => true,
        _ => return None,
    };
    let base = match op {
        0x91 => frame_base(function, frame, memory, depth),
        _ => frame
            .register(u16::from(op - 0x70))
            .ok_or(Unavailable::RegisterNotRecovered),
    };
    Some(base.map(|base| {
        // gimli wraps a register plus an offset at the address size, the frame base plus an
        // offset only where it becomes an address.
        let value = base.wrapping_add(offset as u64);
        let value = if op == 0x91 { value } else { value & mask };
        if stack_value {
            PieceLocation::Value {
                value: Value::Generic(value),
            }
        } else {
            PieceLocation::Address {
                address: value & mask,
            }
        }
    }))
}

/// The value of the function's frame base (`DW_AT_frame_base`) in the frame.
fn frame_base(
    function: &FunctionScope,
    frame: &dyn FrameContext,
    memory: &dyn CapturedMemory,
    depth: u8,
) -> Result<u64, Unavailable> {
    let base = function
        .frame_base
        .as_deref()
        .ok_or(Unavailable::Unsupported)?;
    if depth > 2 {
        return Err(Unavailable::Unsupported);
    }
    let mut value = Err(Unavailable::Unsupported);
    evaluate(base, function, frame, memory, depth + 1, &mut |pieces| {
        value = first_value(pieces, frame)
    })?;
    value
}

/// Evaluates `bytes` with gimli (any expression: stacks, pieces, entry values…).
fn evaluate_with_gimli<'e>(
    bytes: &'e [u8],
    function: &FunctionScope,
    frame: &dyn FrameContext,
    memory: &dyn CapturedMemory,
    depth: u8,
    then: &mut dyn FnMut(&Pieces<'e>),
) -> Result<(), Unavailable> {
    let encoding = gimli_encoding(function.encoding);
    let mut evaluation =
        gimli::Evaluation::<_, OnStack>::new_in(EndianSlice::new(bytes, LittleEndian), encoding);
    evaluation.set_max_iterations(MAX_STEPS);
    let mut state = evaluation
        .evaluate()
        .map_err(|_| Unavailable::Unsupported)?;
    loop {
        state = match state {
            EvaluationResult::Complete => break,
            EvaluationResult::RequiresMemory { address, size, .. } => {
                let read = memory
                    .read(address, usize::from(size))
                    .ok_or(Unavailable::NotCaptured)?;
                let mut word = [0u8; 8];
                word[..read.len().min(8)].copy_from_slice(&read[..read.len().min(8)]);
                evaluation.resume_with_memory(Value::Generic(u64::from_le_bytes(word)))
            }
            EvaluationResult::RequiresRegister { register, .. } => {
                let value = frame
                    .register(register.0)
                    .ok_or(Unavailable::RegisterNotRecovered)?;
                evaluation.resume_with_register(Value::Generic(value))
            }
            EvaluationResult::RequiresFrameBase => {
                evaluation.resume_with_frame_base(frame_base(function, frame, memory, depth)?)
            }
            EvaluationResult::RequiresCallFrameCfa => {
                let cfa = frame.cfa().ok_or(Unavailable::RegisterNotRecovered)?;
                evaluation.resume_with_call_frame_cfa(cfa)
            }
            EvaluationResult::RequiresEntryValue(expression) => {
                let register = single_register(expression.0.slice());
                let value = register
                    .and_then(|r| frame.entry_value(r))
                    .ok_or(Unavailable::OptimizedOut)?;
                evaluation.resume_with_entry_value(Value::Generic(value))
            }
            EvaluationResult::RequiresRelocatedAddress(address) => {
                evaluation.resume_with_relocated_address(frame.relocate(address))
            }
            EvaluationResult::RequiresBaseType(_) => {
                evaluation.resume_with_base_type(gimli::ValueType::Generic)
            }
            EvaluationResult::RequiresParameterRef(_) => return Err(Unavailable::OptimizedOut),
            _ => return Err(Unavailable::Unsupported),
        }
        .map_err(|_| Unavailable::Unsupported)?;
    }
    then(evaluation.as_result());
    Ok(())
}

/// The value's bytes from its pieces (one piece: the whole value).
fn assemble(
    pieces: &[gimli::Piece<EndianSlice<'_, LittleEndian>>],
    size: u64,
    frame: &dyn FrameContext,
    memory: &dyn CapturedMemory,
) -> ValueBytes {
    let mut bytes = ValueBytes::with_capacity(size as usize);
    for piece in pieces {
        let remaining = size.saturating_sub(bytes.len() as u64);
        let len = piece
            .size_in_bits
            .map_or(remaining, |bits| bits.div_ceil(8))
            .min(remaining) as usize;
        match piece.location {
            PieceLocation::Empty => bytes.extend((0..len).map(|_| Err(Unavailable::OptimizedOut))),
            PieceLocation::Register { register } => match frame.register(register.0) {
                Some(value) => push_sized(&mut bytes, value.to_le_bytes().map(Ok), len as u64),
                None => bytes.extend((0..len).map(|_| Err(Unavailable::RegisterNotRecovered))),
            },
            PieceLocation::Address { address } => match memory.read(address, len) {
                Some(read) => bytes.extend(read.iter().copied().map(Ok)),
                None => bytes.extend((0..len).map(|_| Err(Unavailable::NotCaptured))),
            },
            PieceLocation::Value { value } => {
                let raw = match value {
                    Value::F32(f) => u64::from(f.to_bits()),
                    Value::F64(f) => f.to_bits(),
                    other => other.to_u64(!0).unwrap_or(0),
                };
                push_sized(&mut bytes, raw.to_le_bytes().map(Ok), len as u64);
            }
            PieceLocation::Bytes { value } => {
                push_sized(&mut bytes, value.slice().iter().map(|b| Ok(*b)), len as u64)
            }
            _ => bytes.extend((0..len).map(|_| Err(Unavailable::Unsupported))),
        }
        if bytes.len() as u64 >= size {
            break;
        }
    }
    bytes
}

/// Exactly `size` bytes of `bytes` onto `out`: cut, or padded with "optimized out".
fn push_sized(
    out: &mut ValueBytes,
    bytes: impl IntoIterator<Item = Result<u8, Unavailable>>,
    size: u64,
) {
    let end = out.len() + size as usize;
    out.extend(bytes.into_iter().take(size as usize));
    out.resize(end, Err(Unavailable::OptimizedOut));
}

/// The register of a `DW_OP_regN` / `DW_OP_regx N` expression.
pub(super) fn single_register(bytes: &[u8]) -> Option<u16> {
    let (&op, rest) = bytes.split_first()?;
    match op {
        0x50..=0x6f => Some(u16::from(op - 0x50)),
        0x90 => {
            let mut reader = EndianSlice::new(rest, LittleEndian);
            gimli::Reader::read_uleb128_u16(&mut reader).ok()
        }
        _ => None,
    }
}

fn gimli_encoding(encoding: Encoding) -> gimli::Encoding {
    gimli::Encoding {
        address_size: encoding.address_size,
        format: if encoding.dwarf64 {
            gimli::Format::Dwarf64
        } else {
            gimli::Format::Dwarf32
        },
        version: encoding.version,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::variables::table::{Scope, ScopeKind};

    /// A frame with no register recovered over a dump with no memory.
    pub(crate) struct Nothing;
    impl FrameContext for Nothing {
        fn register(&self, _register: u16) -> Option<u64> {
            None
        }
        fn cfa(&self) -> Option<u64> {
            None
        }
        fn entry_value(&self, _register: u16) -> Option<u64> {
            None
        }
        fn relocate(&self, address: u64) -> u64 {
            address
        }
    }
    impl CapturedMemory for Nothing {
        fn read(&self, _address: u64, _len: usize) -> Option<Cow<'_, [u8]>> {
            None
        }
    }

    fn function() -> FunctionScope {
        FunctionScope {
            scope: Scope {
                kind: ScopeKind::Function("f".into()),
                ranges: vec![(0, 16)],
                variables: Vec::new(),
                children: Vec::new(),
            },
            // A frame base that needs the frame base: must not recurse forever.
            frame_base: Some(vec![0x91, 0x00]),
            encoding: Encoding {
                address_size: 8,
                version: 5,
                dwarf64: false,
            },
            call_sites: Vec::new(),
        }
    }

    /// Expressions that loop, recurse or ask for what the frame lacks say why, and end.
    #[test]
    fn hostile_expressions_end_with_a_reason() {
        let f = function();
        let at = |bytes: Vec<u8>| {
            variable_bytes(&Location::Expression(bytes), &f, 0, 8, &Nothing, &Nothing)
        };
        // DW_OP_skip -3: jumps back onto itself.
        assert_eq!(at(vec![0x2f, 0xfd, 0xff]), Err(Unavailable::Unsupported));
        // DW_OP_fbreg 0 with a frame base of DW_OP_fbreg 0.
        assert_eq!(at(vec![0x91, 0x00]), Err(Unavailable::Unsupported));
        // DW_OP_breg7 (rsp) 8, rsp not recovered.
        assert_eq!(at(vec![0x77, 0x08]), Err(Unavailable::RegisterNotRecovered));
        // DW_OP_call_frame_cfa, no caller.
        assert_eq!(at(vec![0x9c]), Err(Unavailable::RegisterNotRecovered));
        // DW_OP_lit16 as an address: not in the dump.
        assert_eq!(
            at(vec![0x40]).unwrap().to_vec(),
            vec![Err(Unavailable::NotCaptured); 8]
        );
        // DW_OP_lit7 DW_OP_stack_value: a value that lives nowhere.
        assert_eq!(at(vec![0x37, 0x9f]).unwrap()[0], Ok(7));
        // Garbage opcode.
        assert_eq!(at(vec![0xff]), Err(Unavailable::Unsupported));
        // Outside every range of a location list: optimized out.
        let list = Location::List(vec![crate::variables::table::LocationRange {
            start: 4,
            end: 8,
            expression: vec![0x50],
        }]);
        assert_eq!(
            variable_bytes(&list, &f, 2, 8, &Nothing, &Nothing),
            Err(Unavailable::OptimizedOut)
        );
    }

    /// A type claiming a terabyte (hostile debug info) reads at most `MAX_VALUE_BYTES`.
    #[test]
    fn a_huge_type_reads_a_bounded_value() {
        let f = function();
        let constant = Location::Constant(vec![1, 2, 3]);
        let bytes = variable_bytes(&constant, &f, 2, 1 << 40, &Nothing, &Nothing).unwrap();
        assert_eq!(bytes.len() as u64, MAX_VALUE_BYTES);
        assert_eq!(bytes[..3], [Ok(1), Ok(2), Ok(3)]);
        // DW_OP_lit16 as an address, a terabyte long: not captured, byte by byte, bounded.
        let address = Location::Expression(vec![0x40]);
        let bytes = variable_bytes(&address, &f, 2, 1 << 40, &Nothing, &Nothing).unwrap();
        assert_eq!(bytes.len() as u64, MAX_VALUE_BYTES);
    }

    /// A frame with a few registers and a CFA.
    struct ThreeRegisters;
    impl FrameContext for ThreeRegisters {
        fn register(&self, register: u16) -> Option<u64> {
            match register {
                3 => Some(0x10),
                5 => Some(0x20),
                6 => Some(0x7ffc_0000_1000),
                _ => None,
            }
        }
        fn cfa(&self) -> Option<u64> {
            Some(0x7ffc_0000_2000)
        }
        fn entry_value(&self, _register: u16) -> Option<u64> {
            None
        }
        fn relocate(&self, address: u64) -> u64 {
            address
        }
    }

    /// The locations worked out without gimli are the ones gimli's evaluation gives, errors
    /// included, on 64- and 32-bit code (where addresses wrap at 32 bits).
    #[test]
    fn simple_locations_are_where_gimli_puts_them() {
        let expressions: [&[u8]; 10] = [
            &[0x56],             // DW_OP_reg6
            &[0x76, 0x10],       // DW_OP_breg6 16
            &[0x76, 0x70],       // DW_OP_breg6 -16
            &[0x75, 0x60],       // DW_OP_breg5 -32: below zero
            &[0x91, 0x68],       // DW_OP_fbreg -24
            &[0x73, 0x08, 0x9f], // DW_OP_breg3 8, DW_OP_stack_value
            &[0x9c],             // DW_OP_call_frame_cfa
            &[0x77, 0x08],       // DW_OP_breg7 8: not recovered
            &[0x91, 0x08, 0x9f], // DW_OP_fbreg 8, DW_OP_stack_value
            &[0x56, 0x9f],       // not simple: gimli's alone
        ];
        for (address_size, frame_base) in [(8, vec![0x9c]), (4, vec![0x56]), (4, vec![0x76, 0x4])] {
            let mut f = function();
            f.encoding.address_size = address_size;
            f.frame_base = Some(frame_base);
            for bytes in expressions {
                let mut by_gimli = None;
                let gimli =
                    evaluate_with_gimli(bytes, &f, &ThreeRegisters, &Nothing, 0, &mut |pieces| {
                        by_gimli = pieces.first().map(|p| p.location)
                    });
                let simple = simple_location(bytes, &f, &ThreeRegisters, &Nothing, 0);
                match simple {
                    Some(Ok(location)) => assert_eq!(Some(location), by_gimli, "{bytes:x?}"),
                    Some(Err(why)) => assert_eq!(gimli, Err(why), "{bytes:x?}"),
                    None => assert_eq!(bytes, [0x56, 0x9f]),
                }
            }
        }
    }
}
