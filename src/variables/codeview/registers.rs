//! CodeView's registers as DWARF numbers them, per CPU: where a PDB says a variable lives in
//! `EDI`, `RCX` or `X19`, the frame's registers (recovered by the unwinder under their DWARF
//! numbers) are read under the DWARF number of the register holding it. Numbers from
//! `cvconst.h`'s `CV_HREG_e`; DWARF's from each CPU's ABI (i386 SysV, x86-64 SysV, AArch64
//! DWARF).

use pdb::MachineType;

use super::CV_VFRAME;

/// The CPUs whose CodeView registers map to DWARF ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Cpu {
    X86,
    Amd64,
    Arm64,
}

impl Cpu {
    pub(super) fn of(machine: MachineType) -> Option<Cpu> {
        match machine {
            MachineType::X86 => Some(Cpu::X86),
            MachineType::Amd64 => Some(Cpu::Amd64),
            MachineType::Arm64 => Some(Cpu::Arm64),
            _ => None,
        }
    }

    pub(super) fn address_size(self) -> u8 {
        match self {
            Cpu::X86 => 4,
            Cpu::Amd64 | Cpu::Arm64 => 8,
        }
    }

    /// The DWARF number of CodeView register `register` (a sub-register maps to the register
    /// holding it; its value is the low bytes, read as the variable's type says). `None`: a
    /// register DWARF has no number for here (`ah`, segment and x87 registers…).
    pub(super) fn dwarf_register(self, register: u16) -> Option<u16> {
        // Within each group, CodeView's order is ax, cx, dx, bx, sp, bp, si, di.
        const X86_ORDER: [u16; 8] = [0, 1, 2, 3, 4, 5, 6, 7];
        const AMD64_ORDER: [u16; 8] = [0, 2, 1, 3, 7, 6, 4, 5];
        let general =
            |order: &[u16; 8], first: u16| order.get(usize::from(register - first)).copied();
        match self {
            Cpu::X86 => match register {
                // al, cl, dl, bl (ah… are the high bytes: not a DWARF register).
                1..=4 => general(&X86_ORDER, 1),
                // ax … di, then eax … edi.
                9..=16 => general(&X86_ORDER, 9),
                17..=24 => general(&X86_ORDER, 17),
                33 => Some(8),
                // xmm0–7.
                154..=161 => Some(register - 154 + 21),
                _ => None,
            },
            Cpu::Amd64 => match register {
                1..=4 => general(&AMD64_ORDER, 1),
                9..=16 => general(&AMD64_ORDER, 9),
                17..=24 => general(&AMD64_ORDER, 17),
                33 => Some(16),
                // xmm0–7, xmm8–15.
                154..=161 => Some(register - 154 + 17),
                252..=259 => Some(register - 252 + 25),
                // sil, dil, bpl, spl.
                324..=327 => [4, 5, 6, 7].get(usize::from(register - 324)).copied(),
                // rax, rbx, rcx, rdx, rsi, rdi, rbp, rsp.
                328..=335 => [0, 3, 2, 1, 4, 5, 6, 7]
                    .get(usize::from(register - 328))
                    .copied(),
                // r8–r15 and their byte, word and dword forms.
                336..=367 => Some((register - 336) % 8 + 8),
                _ => None,
            },
            Cpu::Arm64 => match register {
                // w0–w30, x0–x28 (x16 and x17 are named ip0 and ip1), fp (x29), lr (x30).
                10..=40 => Some(register - 10),
                50..=80 => Some(register - 50),
                81 => Some(31), // sp
                // s0–s31, d0–d31, q0–q31: the low bytes of v0–v31.
                100..=131 => Some(register - 100 + 64),
                140..=171 => Some(register - 140 + 64),
                180..=211 => Some(register - 180 + 64),
                _ => None,
            },
        }
    }

    /// How many bytes register `register` holds (a part of a variable in it is at most that).
    pub(super) fn register_size(self, register: u16) -> u8 {
        match (self, register) {
            (Cpu::X86 | Cpu::Amd64, 1..=8) => 1,
            (Cpu::X86 | Cpu::Amd64, 9..=16) => 2,
            (Cpu::X86 | Cpu::Amd64, 17..=24) => 4,
            (Cpu::Amd64, 324..=327 | 344..=351) => 1,
            (Cpu::Amd64, 352..=359) => 2,
            (Cpu::Amd64, 360..=367) => 4,
            (Cpu::Arm64, 10..=40 | 100..=131) => 4,
            _ => self.address_size(),
        }
    }

    /// The CodeView register a procedure's frame pointer is, from its `S_FRAMEPROC` encoding
    /// (0: none, 1: the stack pointer, 2: the frame pointer, 3: the base pointer).
    pub(super) fn frame_register(self, encoded: u8) -> Option<u16> {
        match (self, encoded) {
            (Cpu::X86, 1) => Some(CV_VFRAME),
            (Cpu::X86, 2) => Some(22),
            (Cpu::X86, 3) => Some(20),
            (Cpu::Amd64, 1) => Some(335),
            (Cpu::Amd64, 2) => Some(334),
            (Cpu::Amd64, 3) => Some(341), // r13
            (Cpu::Arm64, 1) => Some(81),
            (Cpu::Arm64, 2) => Some(79),
            _ => None,
        }
    }

    /// The register `S_BPREL32` offsets count from.
    pub(super) fn base_pointer(self) -> u16 {
        match self {
            Cpu::X86 => 22,
            Cpu::Amd64 => 334,
            Cpu::Arm64 => 79,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each CPU's registers under the numbers its DWARF uses, as `cvconst.h` names them.
    #[test]
    fn codeview_registers_map_to_their_dwarf_numbers() {
        // x86: EAX, ECX, EDI, AL, BX, EIP; AH has no DWARF number.
        let x86: Vec<_> = [17, 18, 24, 1, 12, 33, 5]
            .map(|r| Cpu::X86.dwarf_register(r))
            .into();
        assert_eq!(
            x86,
            [Some(0), Some(1), Some(7), Some(0), Some(3), Some(8), None]
        );
        // amd64: RAX, RCX, RDX, RSP, R13, R13D, XMM1, XMM9, EDX, RIP.
        let amd64: Vec<_> = [328, 330, 331, 335, 341, 365, 155, 253, 19, 33]
            .map(|r| Cpu::Amd64.dwarf_register(r))
            .into();
        assert_eq!(
            amd64,
            [0, 2, 1, 7, 13, 13, 18, 26, 1, 16].map(Some).to_vec()
        );
        // arm64: X0, X19, FP, LR, SP, W3, D8, Q31; PC and NZCV have none.
        let arm64: Vec<_> = [50, 69, 79, 80, 81, 13, 148, 211, 83, 90]
            .map(|r| Cpu::Arm64.dwarf_register(r))
            .into();
        assert_eq!(
            arm64,
            [
                Some(0),
                Some(19),
                Some(29),
                Some(30),
                Some(31),
                Some(3),
                Some(72),
                Some(95),
                None,
                None
            ]
        );
        assert_eq!(
            Cpu::Arm64.dwarf_register(Cpu::Arm64.frame_register(2).unwrap()),
            Some(29)
        );
        assert_eq!(Cpu::Arm64.register_size(13), 4);
        assert_eq!(Cpu::Amd64.register_size(352), 2);
        assert_eq!(Cpu::X86.register_size(24), 4);
    }
}
