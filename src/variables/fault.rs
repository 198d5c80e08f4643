//! Which variable the fault address came from: a crash that reads at 0x10 while the crashing
//! frame's `node->next` is null says "0x10 = `node->next` (0x0) + 0x10, field `name`". The
//! candidates are the crashing frame's pointer variables, the pointer members of its struct
//! variables, and the pointer members of the structs its pointers point to (one dereference,
//! when the dump captured that memory); the fault address must be the pointer's value or a
//! small offset into what it points to.

use serde::{Deserialize, Serialize};

use super::eval::{self, CapturedMemory, FrameContext};
use super::render::{AddressMap, RenderLimits, Renderer};
use super::table::{TypeId, TypeInfo, VariablesTable};

/// How far past a null pointer an access still counts as through it (the first page).
const NULL_REACH: u64 = 4096;

/// A variable whose value the fault address is, or a small offset from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultVariable {
    /// The variable as an expression: `node`, `node->next`, `header.data`.
    pub expression: String,
    /// Its value.
    pub value: u64,
    /// The fault address minus its value.
    pub offset: u64,
    /// The member of what it points to at that offset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl FaultVariable {
    /// `0x10 = `node->next` (0x0) + 0x10, field `name``.
    pub fn sentence(&self) -> String {
        let field = self
            .field
            .as_deref()
            .map(|f| format!(", field `{f}`"))
            .unwrap_or_default();
        format!(
            "{:#x} = `{}` ({:#x}) + {:#x}{field}",
            self.value.wrapping_add(self.offset),
            self.expression,
            self.value,
            self.offset
        )
    }
}

/// One step of a pointer's expression: a variable's name, or a member of the value (`.`) or
/// of the pointee (`->`) of the step before. Expressions are spelled out only for the pointer
/// that explains the fault: a frame's structs can hold hundreds of pointers.
struct Step<'t> {
    parent: Option<usize>,
    separator: &'static str,
    name: &'t str,
}

/// A pointer found among a frame's variables: its expression (the last of its steps), value
/// and pointee type.
struct Pointer {
    step: usize,
    value: u64,
    target: Option<TypeId>,
}

/// The pointers of a frame's variables, and the steps that spell their expressions.
#[derive(Default)]
struct Found<'t> {
    steps: Vec<Step<'t>>,
    pointers: Vec<Pointer>,
}

impl<'t> Found<'t> {
    fn step(&mut self, parent: Option<usize>, separator: &'static str, name: &'t str) -> usize {
        self.steps.push(Step {
            parent,
            separator,
            name,
        });
        self.steps.len() - 1
    }

    /// `node->next.data`: the steps from the variable to `step`.
    fn expression(&self, step: usize) -> String {
        let mut chain = Vec::new();
        let mut at = Some(step);
        while let Some(i) = at {
            chain.push(&self.steps[i]);
            at = self.steps[i].parent;
        }
        let mut out = String::new();
        for step in chain.iter().rev() {
            out.push_str(step.separator);
            out.push_str(step.name);
        }
        out
    }
}

/// The variable of the crashing frame `frame` (at `pc`, module-relative) that `address` came
/// from, if any.
pub fn explain(
    address: u64,
    table: &VariablesTable,
    pc: u64,
    frame: &dyn FrameContext,
    memory: &dyn CapturedMemory,
    map: &dyn AddressMap,
) -> Option<FaultVariable> {
    let function = table.function_at(pc)?;
    let renderer = Renderer {
        table,
        memory,
        map,
        limits: RenderLimits::default(),
    };
    let mut found = Found {
        steps: Vec::with_capacity(64),
        pointers: Vec::with_capacity(16),
    };
    for scope in function.scope.chain_at(pc) {
        for decl in &scope.variables {
            // Only pointers and structs (which may hold pointers) can explain an address.
            let holds_pointers = matches!(
                renderer.resolved(decl.type_id),
                Some(TypeInfo::Pointer { .. } | TypeInfo::Struct { .. })
            );
            let size = renderer.size_of(decl.type_id);
            if !holds_pointers || size == 0 || size > 4096 {
                continue;
            }
            let Ok(bytes) = eval::variable_bytes(&decl.location, function, pc, size, frame, memory)
            else {
                continue;
            };
            let Ok(bytes) = bytes.into_iter().collect::<Result<Vec<u8>, _>>() else {
                continue;
            };
            let step = found.step(None, "", &decl.name);
            collect(&renderer, step, decl.type_id, &bytes, 0, &mut found);
        }
    }
    // One dereference: the pointer members of the structs the pointers point to.
    let direct = found.pointers.len();
    for i in 0..direct.min(256) {
        let Pointer {
            step,
            value,
            target,
        } = found.pointers[i];
        if value < NULL_REACH || !matches!(renderer.resolved(target), Some(TypeInfo::Struct { .. }))
        {
            continue;
        }
        let size = renderer.size_of(target);
        let Some(bytes) = memory.read(value, size.min(4096) as usize) else {
            continue;
        };
        collect_members(&renderer, (step, "->"), target, &bytes, &mut found);
    }
    let (offset, pointer) = found
        .pointers
        .iter()
        .filter_map(|p| {
            let offset = address.checked_sub(p.value)?;
            let reach = if p.value == 0 {
                null_reach(&renderer, p.target)
            } else {
                renderer.size_of(p.target)
            };
            (offset < reach).then_some((offset, p))
        })
        .min_by_key(|(offset, _)| *offset)?;
    Some(FaultVariable {
        expression: found.expression(pointer.step),
        value: pointer.value,
        offset,
        field: member_at(&renderer, pointer.target, offset),
    })
}

/// The pointers in a value (spelled by `step`): itself, or the pointer members of a struct
/// (two levels deep).
fn collect<'t>(
    renderer: &Renderer<'t>,
    step: usize,
    type_id: Option<TypeId>,
    bytes: &[u8],
    depth: usize,
    out: &mut Found<'t>,
) {
    match renderer.resolved(type_id) {
        Some(TypeInfo::Pointer { target, .. }) if bytes.len() >= 4 => {
            let mut word = [0u8; 8];
            let n = bytes.len().min(8);
            word[..n].copy_from_slice(&bytes[..n]);
            out.pointers.push(Pointer {
                step,
                value: u64::from_le_bytes(word),
                target: *target,
            });
        }
        Some(TypeInfo::Struct { .. }) if depth < 2 => {
            collect_members(renderer, (step, "."), type_id, bytes, out);
        }
        _ => {}
    }
}

/// The pointers among the members of a struct reached through `(step, separator)`.
fn collect_members<'t>(
    renderer: &Renderer<'t>,
    (parent, separator): (usize, &'static str),
    type_id: Option<TypeId>,
    bytes: &[u8],
    out: &mut Found<'t>,
) {
    let Some(TypeInfo::Struct { members, .. }) = renderer.resolved(type_id) else {
        return;
    };
    for member in members.iter().take(64).filter(|m| m.bits.is_none()) {
        let size = renderer.size_of(member.type_id) as usize;
        let start = member.offset as usize;
        if let Some(part) = bytes.get(start..start.saturating_add(size)) {
            let step = out.step(Some(parent), separator, &member.name);
            collect(renderer, step, member.type_id, part, 1, out);
        }
    }
}

/// How far past a null pointer to `target` an access can be through it: a struct's member (its
/// size), an element of an array it points into (the first page); a function or `void`
/// pointer is not dereferenced at an offset, only called or read at 0.
fn null_reach(renderer: &Renderer<'_>, target: Option<TypeId>) -> u64 {
    match renderer.resolved(target) {
        None | Some(TypeInfo::Function) => 1,
        Some(TypeInfo::Struct { .. }) => match renderer.size_of(target) {
            0 => NULL_REACH,
            size => size.min(NULL_REACH),
        },
        Some(_) => NULL_REACH,
    }
}

/// The name of the member of `type_id` (a struct) covering byte `offset`.
fn member_at(renderer: &Renderer<'_>, type_id: Option<TypeId>, offset: u64) -> Option<String> {
    let Some(TypeInfo::Struct { members, .. }) = renderer.resolved(type_id) else {
        return None;
    };
    members
        .iter()
        .find(|m| (m.offset..m.offset + renderer.size_of(m.type_id).max(1)).contains(&offset))
        .map(|m| m.name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::variables::table::{
        BaseEncoding, Encoding, FunctionScope, Location, Member, Scope, ScopeKind, VariableDecl,
    };

    // No registers and no memory: the variables are constants.
    use crate::variables::eval::tests::Nothing;
    impl AddressMap for Nothing {
        fn describe(&self, _: u64) -> compact_str::CompactString {
            compact_str::CompactString::const_new("null")
        }
    }

    /// Null pointers explain an address past them only as far as what they point to reaches:
    /// a struct's size, an array's first page; a function or `void` pointer only at 0.
    #[test]
    fn a_null_pointer_reaches_as_far_as_its_target() {
        let null = |name: &str, type_id: TypeId| VariableDecl {
            name: name.into(),
            parameter: false,
            type_id: Some(type_id),
            location: Location::Constant(vec![0; 8]),
        };
        let int = |name: &str, offset: u64| Member {
            name: name.into(),
            offset,
            type_id: Some(0),
            bits: None,
        };
        let types = vec![
            TypeInfo::Base {
                name: "int".into(),
                size: 4,
                encoding: BaseEncoding::Signed,
            },
            TypeInfo::Function,
            TypeInfo::Pointer {
                size: 8,
                target: Some(1),
                reference: false,
            },
            TypeInfo::Pointer {
                size: 8,
                target: None,
                reference: false,
            },
            TypeInfo::Struct {
                keyword: "struct".into(),
                name: Some("pair".into()),
                size: 16,
                members: vec![int("first", 0), int("second", 8)],
                variants: None,
                element: None,
            },
            TypeInfo::Pointer {
                size: 8,
                target: Some(4),
                reference: false,
            },
            TypeInfo::Pointer {
                size: 8,
                target: Some(0),
                reference: false,
            },
        ];
        let scope = |variables| Scope {
            kind: ScopeKind::Function("f".into()),
            ranges: vec![(0, 100)],
            variables,
            children: Vec::new(),
        };
        let function = |variables| FunctionScope {
            scope: scope(variables),
            frame_base: None,
            encoding: Encoding {
                address_size: 8,
                version: 5,
                dwarf64: false,
            },
            call_sites: Vec::new(),
        };
        let explained = |variables: Vec<VariableDecl>, address: u64| {
            let table = VariablesTable::new(0, vec![function(variables)], types.clone());
            explain(address, &table, 10, &Nothing, &Nothing, &Nothing).map(|f| f.sentence())
        };
        let callers = || vec![null("handler", 2), null("context", 3)];
        assert_eq!(explained(callers(), 0x45), None);
        assert_eq!(
            explained(callers(), 0).as_deref(),
            Some("0x0 = `handler` (0x0) + 0x0")
        );
        let mut with_pair = callers();
        with_pair.push(null("pair", 5));
        assert_eq!(
            explained(with_pair.clone(), 8).as_deref(),
            Some("0x8 = `pair` (0x0) + 0x8, field `second`")
        );
        assert_eq!(explained(with_pair, 0x45), None);
        assert_eq!(
            explained(vec![null("numbers", 6)], 0x45).as_deref(),
            Some("0x45 = `numbers` (0x0) + 0x45")
        );
    }
}
