//! Breakpad's data-flow idea (`exploitability_win.cc`), for x86-64: when a read from a bad
//! address faults, whoever controls that address controls the value the read would have
//! loaded. Following the loaded register through the rest of the basic block shows what the
//! program was about to do with it: a branch target or a write address built from it makes the
//! bad read an exploit primitive, a string instruction's pointer a weaker one.

use yaxpeax_arch::LengthedInstruction;
use yaxpeax_x86::amd64::{register_class, InstDecoder, Instruction, Opcode, Operand, RegSpec};

/// What the value read at the fault was about to become.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueUse {
    /// The target of a call or jump (directly, or the address its target is loaded from).
    BranchTarget,
    /// The address of a memory write.
    WriteAddress,
    /// The source or destination pointer of a string instruction (`rep movs`, `stos`…).
    StringPointer,
}

/// Where the loaded value went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueFlow {
    /// How it was used.
    pub used_as: ValueUse,
    /// The instruction that used it, as text (`call qword [rax + 0x10]`).
    pub instruction: String,
    /// How many instructions after the faulting one.
    pub distance: usize,
}

/// At most this many instructions after the fault are followed (Breakpad follows the basic
/// block; a block this long is rare).
const MAX_INSTRUCTIONS: usize = 32;

/// A general-purpose register's identity whatever its width (`rax`, `eax`, `ax`, `al` are one).
fn family(reg: RegSpec) -> Option<u8> {
    let class = reg.class();
    if class == register_class::Q
        || class == register_class::D
        || class == register_class::W
        || class == register_class::RB
    {
        Some(reg.num())
    } else if class == register_class::B {
        // Without a REX prefix, byte registers 4-7 are ah, ch, dh, bh.
        Some(reg.num() & 3)
    } else {
        None
    }
}

/// The registers an operand's address is computed from.
fn address_registers(operand: &Operand) -> Vec<RegSpec> {
    match *operand {
        Operand::MemDeref { base } | Operand::Disp { base, .. } => vec![base],
        Operand::MemIndexScale { index, .. } | Operand::MemIndexScaleDisp { index, .. } => {
            vec![index]
        }
        Operand::MemBaseIndexScale { base, index, .. }
        | Operand::MemBaseIndexScaleDisp { base, index, .. } => vec![base, index],
        _ => Vec::new(),
    }
}

/// The value of `operand` derives from a tainted register: the register itself, or memory
/// addressed through one.
fn carries(operand: &Operand, tainted: &[u8]) -> bool {
    let is_tainted = |reg: RegSpec| family(reg).is_some_and(|f| tainted.contains(&f));
    match *operand {
        Operand::Register { reg } => is_tainted(reg),
        _ => address_registers(operand).into_iter().any(is_tainted),
    }
}

/// Instructions whose first operand is only read.
fn reads_first_operand_only(opcode: Opcode) -> bool {
    matches!(
        opcode,
        Opcode::CMP | Opcode::TEST | Opcode::BT | Opcode::PUSH | Opcode::NOP
    )
}

/// Instructions that end the basic block.
fn ends_block(instruction: &Instruction) -> bool {
    instruction.opcode().is_jcc()
        || matches!(
            instruction.opcode(),
            Opcode::RETURN
                | Opcode::RETF
                | Opcode::JMP
                | Opcode::CALL
                | Opcode::CALLF
                | Opcode::JMPF
                | Opcode::LOOP
                | Opcode::LOOPZ
                | Opcode::LOOPNZ
                | Opcode::JRCXZ
                | Opcode::INT
                | Opcode::UD2
                | Opcode::HLT
                | Opcode::SYSCALL
        )
}

/// Follows the value the faulting instruction at the start of `code` was loading (x86-64
/// machine code, as captured in the dump). `None` when that instruction is not a load into a
/// register, or the value is overwritten or unused before the block ends.
pub fn follow(code: &[u8]) -> Option<ValueFlow> {
    let decoder = InstDecoder::default();
    let first = decoder.decode_slice(code).ok()?;
    if !matches!(
        first.opcode(),
        Opcode::MOV | Opcode::MOVZX | Opcode::MOVSX | Opcode::MOVSXD
    ) || first.operand_count() != 2
        || !first.operand(1).is_memory()
    {
        return None;
    }
    let Operand::Register { reg } = first.operand(0) else {
        return None;
    };
    let mut tainted = vec![family(reg)?];
    let mut offset = first.len().to_const() as usize;
    for distance in 1..=MAX_INSTRUCTIONS {
        let instruction = decoder.decode_slice(code.get(offset..)?).ok()?;
        offset += instruction.len().to_const() as usize;
        let opcode = instruction.opcode();
        let operands: Vec<Operand> = (0..instruction.operand_count())
            .map(|i| instruction.operand(i))
            .collect();
        let used_as = match opcode {
            Opcode::CALL | Opcode::JMP | Opcode::CALLF | Opcode::JMPF
                if operands.first().is_some_and(|o| carries(o, &tainted)) =>
            {
                Some(ValueUse::BranchTarget)
            }
            Opcode::MOVS | Opcode::STOS | Opcode::CMPS | Opcode::SCAS | Opcode::LODS
                if [6u8, 7].iter().any(|r| tainted.contains(r)) =>
            {
                Some(ValueUse::StringPointer)
            }
            _ if !reads_first_operand_only(opcode)
                && operands
                    .first()
                    .is_some_and(|o| o.is_memory() && carries(o, &tainted)) =>
            {
                Some(ValueUse::WriteAddress)
            }
            _ => None,
        };
        if let Some(used_as) = used_as {
            return Some(ValueFlow {
                used_as,
                instruction: instruction.to_string(),
                distance,
            });
        }
        if ends_block(&instruction) {
            return None;
        }
        // The destination register takes the taint of its sources, or loses it when
        // overwritten with something else.
        let Some(&Operand::Register { reg }) = operands.first() else {
            continue;
        };
        let Some(dest) = family(reg).filter(|_| !reads_first_operand_only(opcode)) else {
            continue;
        };
        let from_tainted = operands[1..].iter().any(|o| carries(o, &tainted));
        let self_cleared = opcode == Opcode::XOR && operands.get(1) == operands.first();
        let overwrites = matches!(
            opcode,
            Opcode::MOV
                | Opcode::MOVZX
                | Opcode::MOVSX
                | Opcode::MOVSXD
                | Opcode::LEA
                | Opcode::POP
        );
        if from_tainted && !self_cleared {
            if !tainted.contains(&dest) {
                tainted.push(dest);
            }
        } else if overwrites || self_cleared {
            tainted.retain(|f| *f != dest);
            if tainted.is_empty() {
                return None;
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `mov rax, [rcx]`: the faulting read every case starts with.
    const LOAD: [u8; 3] = [0x48, 0x8b, 0x01];

    fn after_load(rest: &[u8]) -> Option<(ValueUse, usize)> {
        let code = [&LOAD[..], rest].concat();
        follow(&code).map(|f| (f.used_as, f.distance))
    }

    #[test]
    fn the_loaded_value_is_followed_to_its_use() {
        // call qword [rax + 0x10]: a virtual call through the loaded pointer.
        assert_eq!(
            after_load(&[0xff, 0x50, 0x10]),
            Some((ValueUse::BranchTarget, 1))
        );
        // add rax, 8; jmp rax
        assert_eq!(
            after_load(&[0x48, 0x83, 0xc0, 0x08, 0xff, 0xe0]),
            Some((ValueUse::BranchTarget, 2))
        );
        // mov [rax], rdx
        assert_eq!(
            after_load(&[0x48, 0x89, 0x10]),
            Some((ValueUse::WriteAddress, 1))
        );
        // mov rsi, rax; rep movsb
        assert_eq!(
            after_load(&[0x48, 0x89, 0xc6, 0xf3, 0xa4]),
            Some((ValueUse::StringPointer, 2))
        );
        let flow = follow(&[&LOAD[..], &[0xff, 0x50, 0x10]].concat()).unwrap();
        assert!(flow.instruction.starts_with("call"), "{}", flow.instruction);
    }

    #[test]
    fn an_overwritten_or_unused_value_leads_nowhere() {
        // mov rax, 1; call rax
        assert_eq!(
            after_load(&[0x48, 0xc7, 0xc0, 0x01, 0x00, 0x00, 0x00, 0xff, 0xd0]),
            None
        );
        // xor eax, eax; mov [rax], rdx
        assert_eq!(after_load(&[0x31, 0xc0, 0x48, 0x89, 0x10]), None);
        // ret
        assert_eq!(after_load(&[0xc3]), None);
        // cmp [rax], rdx only reads: then the block ends.
        assert_eq!(after_load(&[0x48, 0x39, 0x10, 0xc3]), None);
        // Cut short: nothing after the load.
        assert_eq!(after_load(&[]), None);
        // The faulting instruction is a write, not a load: mov [rcx], rax
        assert_eq!(follow(&[0x48, 0x89, 0x01, 0xff, 0xd0]), None);
    }
}
