//! The variables table of one module: what its debug file says about each function's
//! parameters and locals — in which scope (the function, an inlined call, a block) and for which
//! addresses each lives, where (a DWARF location expression or list), and of what type. Built
//! once from the debug file (`variables::dwarf`), stored as a derived cache, and read for every
//! crash in the module: a warm crash pays lookups, not DWARF parsing.
//!
//! Addresses are relative to the module's load address, as the SymCache's are.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// The format version of a stored table; part of its cache's version.
pub const TABLE_VERSION: u32 = 5;

/// Every function with variables in one module, and the types they use.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct VariablesTable {
    /// The module's link-time load address (`DW_OP_addr` operands are relocated from it).
    pub load_address: u64,
    /// Outermost scopes (functions), sorted by their first address.
    pub functions: Vec<FunctionScope>,
    /// Types, indexed by [`TypeId`].
    pub types: Vec<TypeInfo>,
    /// For each function, its address ranges: `(start, end, index into functions)`, sorted.
    #[serde(skip)]
    index: Vec<(u64, u64, u32)>,
    /// Each type as the source spells it, by [`TypeId`] (spelled once per table and shared by
    /// every value of the type).
    #[serde(skip)]
    type_names: Vec<Arc<str>>,
    /// Each type's size in bytes (0 when unknown), by [`TypeId`], computed once per table.
    #[serde(skip)]
    sizes: Vec<u64>,
}

/// A function's outermost scope plus what evaluating its expressions needs. Stored with its
/// scopes as a flat list (each with its depth), so reading a table back never recurses as deep
/// as the scopes nest.
#[derive(Debug, Clone, Deserialize)]
#[serde(from = "StoredFunction")]
pub struct FunctionScope {
    /// The function body.
    pub scope: Scope,
    /// `DW_AT_frame_base`, for `DW_OP_fbreg`.
    pub frame_base: Option<Vec<u8>>,
    /// The DWARF encoding of its unit (expressions are read with it).
    pub encoding: Encoding,
    /// Calls this function makes, with the values it passed in registers where the compiler
    /// recorded them: a callee's `DW_OP_entry_value` is answered from these.
    pub call_sites: Vec<CallSite>,
}

/// A function as stored: its scopes in pre-order, each with its depth (the body is 0).
#[derive(Deserialize)]
struct StoredFunction {
    scopes: Vec<StoredScope>,
    frame_base: Option<Vec<u8>>,
    encoding: Encoding,
    call_sites: Vec<CallSite>,
}

/// One scope of a [`StoredFunction`].
#[derive(Deserialize)]
struct StoredScope {
    depth: u32,
    kind: ScopeKind,
    ranges: Vec<(u64, u64)>,
    variables: Vec<VariableDecl>,
}

/// A [`StoredFunction`] written from a function in memory, borrowing it.
#[derive(Serialize)]
struct StoredFunctionRef<'a> {
    scopes: Vec<StoredScopeRef<'a>>,
    frame_base: &'a Option<Vec<u8>>,
    encoding: Encoding,
    call_sites: &'a [CallSite],
}

#[derive(Serialize)]
struct StoredScopeRef<'a> {
    depth: u32,
    kind: &'a ScopeKind,
    ranges: &'a [(u64, u64)],
    variables: &'a [VariableDecl],
}

impl Serialize for FunctionScope {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut scopes = Vec::new();
        let mut pending = vec![(0u32, &self.scope)];
        while let Some((depth, scope)) = pending.pop() {
            // Children pushed in reverse so they come out in order.
            pending.extend(scope.children.iter().rev().map(|c| (depth + 1, c)));
            scopes.push(StoredScopeRef {
                depth,
                kind: &scope.kind,
                ranges: &scope.ranges,
                variables: &scope.variables,
            });
        }
        StoredFunctionRef {
            scopes,
            frame_base: &self.frame_base,
            encoding: self.encoding,
            call_sites: &self.call_sites,
        }
        .serialize(serializer)
    }
}

impl From<StoredFunction> for FunctionScope {
    fn from(stored: StoredFunction) -> FunctionScope {
        // Rebuilt with a stack of open scopes; a depth that skips levels (a corrupt table)
        // nests under the deepest open scope.
        let mut open: Vec<Scope> = Vec::new();
        for flat in stored.scopes {
            let depth = (flat.depth as usize).max(usize::from(!open.is_empty()));
            while open.len() > depth {
                let done = open.pop().expect("not empty");
                open.last_mut().expect("a parent").children.push(done);
            }
            open.push(Scope {
                kind: flat.kind,
                ranges: flat.ranges,
                variables: flat.variables,
                children: Vec::new(),
            });
        }
        while open.len() > 1 {
            let done = open.pop().expect("not empty");
            open.last_mut().expect("a parent").children.push(done);
        }
        let scope = open.pop().unwrap_or(Scope {
            kind: ScopeKind::Block,
            ranges: Vec::new(),
            variables: Vec::new(),
            children: Vec::new(),
        });
        FunctionScope {
            scope,
            frame_base: stored.frame_base,
            encoding: stored.encoding,
            call_sites: stored.call_sites,
        }
    }
}

/// The DWARF encoding of a unit.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Encoding {
    /// Bytes per address.
    pub address_size: u8,
    /// DWARF version.
    pub version: u16,
    /// 64-bit DWARF.
    pub dwarf64: bool,
}

/// A function body, an inlined call or a lexical block: the variables declared in it and the
/// scopes nested in it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Scope {
    /// What the scope is.
    pub kind: ScopeKind,
    /// Addresses it covers, `[start, end)`.
    pub ranges: Vec<(u64, u64)>,
    /// Declared directly in it, in declaration order.
    pub variables: Vec<VariableDecl>,
    /// Nested scopes.
    pub children: Vec<Scope>,
}

/// The kinds of scope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ScopeKind {
    /// A function's own body.
    Function(String),
    /// The body of a function inlined here (its name shared by the variables read in it).
    Inlined(Arc<str>),
    /// A `{ … }` block.
    Block,
}

/// A parameter or local as declared.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VariableDecl {
    /// Its name in the source (shared by every value read of it).
    pub name: Arc<str>,
    /// A parameter of the scope's function (else a local).
    pub parameter: bool,
    /// Its type, if the debug file gives one.
    pub type_id: Option<TypeId>,
    /// Where its value lives.
    pub location: Location,
}

/// Where a variable's value lives.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Location {
    /// One expression, valid wherever the variable is in scope.
    Expression(Vec<u8>),
    /// Expressions per address range; outside every range the value is optimized out.
    List(Vec<LocationRange>),
    /// A constant the compiler folded (`DW_AT_const_value`), little-endian bytes.
    Constant(Vec<u8>),
    /// No location: optimized out.
    None,
    /// A location this reader cannot express (a register with no DWARF number).
    Unsupported,
}

/// One entry of a location list.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LocationRange {
    /// First address (module-relative).
    pub start: u64,
    /// One past the last address.
    pub end: u64,
    /// The expression valid there.
    pub expression: Vec<u8>,
}

/// A call made from a function, and what it passed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CallSite {
    /// The call's return address (module-relative).
    pub return_address: u64,
    /// `(DWARF register of the parameter at entry, expression of its value in the caller)`.
    pub parameters: Vec<(u16, Vec<u8>)>,
}

/// Index of a type in [`VariablesTable::types`].
pub type TypeId = u32;

/// A type as values are read with it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum TypeInfo {
    /// An integer, character, boolean or floating-point type.
    Base {
        name: String,
        size: u8,
        encoding: BaseEncoding,
    },
    /// A pointer or reference to `target` (`None`: `void`).
    Pointer {
        size: u8,
        target: Option<TypeId>,
        reference: bool,
    },
    /// A struct, class or union, with its data members.
    Struct {
        keyword: String,
        name: Option<String>,
        size: u64,
        members: Vec<Member>,
        /// A Rust enum's variants (`DW_TAG_variant_part`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        variants: Option<Box<Variants>>,
        /// The element type of a Rust `Vec<T>` (its template parameter `T`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        element: Option<TypeId>,
    },
    /// An array of `count` elements (`None`: unknown bound).
    Array {
        element: Option<TypeId>,
        count: Option<u64>,
    },
    /// An enumeration and its named values.
    Enum {
        name: Option<String>,
        size: u8,
        signed: bool,
        values: Vec<(String, i64)>,
    },
    /// A typedef.
    Typedef {
        name: String,
        target: Option<TypeId>,
    },
    /// `const`, `volatile`, `restrict` or `_Atomic` applied to `target`.
    Qualified {
        qualifier: String,
        target: Option<TypeId>,
    },
    /// A function type (only ever pointed to).
    Function,
    /// A type this reader does not decode; its name, when it has one.
    Other(Option<String>),
}

/// The variants of a Rust enum: its discriminant says which one a value holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Variants {
    /// Where the discriminant is (absent: one variant only).
    pub discriminant: Option<Member>,
    /// Each variant: the discriminant value choosing it (`None`: every other value) and its
    /// fields, as a member of the variant's own struct type.
    pub variants: Vec<(Option<u64>, Member)>,
}

/// A data member of a struct, class or union.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Member {
    /// Its name (`<base>` for a base class; shared by every value read of it).
    pub name: Arc<str>,
    /// Byte offset in the struct.
    pub offset: u64,
    /// Its type.
    pub type_id: Option<TypeId>,
    /// A bit field: `(bit offset from the member's byte offset, width)`.
    pub bits: Option<(u16, u16)>,
}

/// How a base type's bytes are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BaseEncoding {
    Signed,
    Unsigned,
    SignedChar,
    UnsignedChar,
    Float,
    Boolean,
    /// UTF character types (`char16_t`, Rust `char`).
    Utf,
    Other,
}

/// Largest decompressed table read back (a stored cache is trusted only this far: past it the
/// JSON ends early and the table is refused as corrupt).
const MAX_TABLE_BYTES: u64 = 4 << 30;

impl VariablesTable {
    /// The table as stored: zstd-compressed JSON, written as it is compressed.
    pub fn encode(&self) -> Vec<u8> {
        let mut encoder = zstd::Encoder::new(Vec::new(), 3).expect("zstd encoder in memory");
        serde_json::to_writer(&mut encoder, self).expect("variables tables serialize");
        encoder.finish().expect("zstd compresses in memory")
    }

    /// Reads what [`encode`](Self::encode) wrote (an empty payload is an empty table).
    pub fn decode(payload: &[u8]) -> Result<VariablesTable, String> {
        if payload.is_empty() {
            return Ok(VariablesTable::default());
        }
        // Read as it is decompressed: the JSON is never whole in memory.
        let decoder = zstd::stream::read::Decoder::new(payload).map_err(|e| e.to_string())?;
        let reader = std::io::BufReader::new(std::io::Read::take(decoder, MAX_TABLE_BYTES));
        let mut table: VariablesTable =
            serde_json::from_reader(reader).map_err(|e| format!("corrupt variables table: {e}"))?;
        table.reindex();
        Ok(table)
    }

    /// A table over `functions` and `types`, indexed for lookups.
    pub fn new(
        load_address: u64,
        functions: Vec<FunctionScope>,
        types: Vec<TypeInfo>,
    ) -> VariablesTable {
        let mut table = VariablesTable {
            load_address,
            functions,
            types,
            index: Vec::new(),
            type_names: Vec::new(),
            sizes: Vec::new(),
        };
        table.reindex();
        table
    }

    /// Rebuilds the address index, the type names and sizes (after reading a stored table).
    pub fn reindex(&mut self) {
        self.index = self
            .functions
            .iter()
            .enumerate()
            .flat_map(|(i, f)| f.scope.ranges.iter().map(move |r| (r.0, r.1, i as u32)))
            .filter(|(start, end, _)| start < end)
            .collect();
        self.index.sort_unstable();
        self.type_names = (0..self.types.len() as TypeId)
            .map(|id| Arc::from(self.spell(Some(id), 0)))
            .collect();
        self.sizes = (0..self.types.len() as TypeId)
            .map(|id| self.measure(Some(id), 0))
            .collect();
    }

    /// The size in bytes of type `id` (0 when unknown).
    pub fn type_size(&self, id: Option<TypeId>) -> u64 {
        id.and_then(|id| self.sizes.get(id as usize).copied())
            .unwrap_or(0)
    }

    /// Measures type `id` through at most 64 typedefs, qualifiers and nested arrays (a cyclic
    /// type graph measures 0).
    fn measure(&self, id: Option<TypeId>, depth: usize) -> u64 {
        if depth > 64 {
            return 0;
        }
        match self.type_info(id) {
            Some(TypeInfo::Base { size, .. } | TypeInfo::Pointer { size, .. }) => u64::from(*size),
            Some(TypeInfo::Enum { size, .. }) => u64::from(*size),
            Some(TypeInfo::Struct { size, .. }) => *size,
            Some(TypeInfo::Array { element, count }) => self
                .measure(*element, depth + 1)
                .saturating_mul(count.unwrap_or(0)),
            Some(TypeInfo::Typedef { target, .. } | TypeInfo::Qualified { target, .. }) => {
                self.measure(*target, depth + 1)
            }
            _ => 0,
        }
    }

    /// The type as the source spells it (`struct node *`, `char [8]`; `void` for none).
    pub fn type_name(&self, id: Option<TypeId>) -> &str {
        match id.and_then(|id| self.type_names.get(id as usize)) {
            Some(name) => name,
            None => "void",
        }
    }

    /// Spells type `id`, its parts at most 16 deep (a cyclic type graph ends in `…`).
    fn spell(&self, id: Option<TypeId>, depth: usize) -> String {
        if depth > 16 {
            return "…".to_owned();
        }
        match self.type_info(id) {
            None => "void".to_owned(),
            Some(TypeInfo::Base { name, .. }) | Some(TypeInfo::Typedef { name, .. }) => {
                name.clone()
            }
            Some(TypeInfo::Pointer {
                target, reference, ..
            }) => {
                let target = self.spell(*target, depth + 1);
                let sigil = if *reference { "&" } else { "*" };
                if target.ends_with(['*', '&']) {
                    format!("{target}{sigil}")
                } else {
                    format!("{target} {sigil}")
                }
            }
            Some(TypeInfo::Struct { keyword, name, .. }) => match name {
                Some(name) => format!("{keyword} {name}"),
                None => format!("{keyword} {{…}}"),
            },
            Some(TypeInfo::Array { element, count }) => match count {
                Some(n) => format!("{} [{n}]", self.spell(*element, depth + 1)),
                None => format!("{} []", self.spell(*element, depth + 1)),
            },
            Some(TypeInfo::Enum { name, .. }) => match name {
                Some(name) => format!("enum {name}"),
                None => "enum {…}".to_owned(),
            },
            Some(TypeInfo::Qualified { qualifier, target }) => {
                let target = self.spell(*target, depth + 1);
                if target.ends_with('*') {
                    format!("{target} {qualifier}")
                } else {
                    format!("{qualifier} {target}")
                }
            }
            Some(TypeInfo::Function) => "function".to_owned(),
            Some(TypeInfo::Other(name)) => name.clone().unwrap_or_else(|| "?".to_owned()),
        }
    }

    /// The function whose body covers `address` (module-relative).
    pub fn function_at(&self, address: u64) -> Option<&FunctionScope> {
        let after = self
            .index
            .partition_point(|(start, _, _)| *start <= address);
        // Ranges of distinct functions do not overlap; look back a few in case they do.
        self.index[..after]
            .iter()
            .rev()
            .take(8)
            .find(|(start, end, _)| (*start..*end).contains(&address))
            .map(|(_, _, i)| &self.functions[*i as usize])
    }

    /// The type with id `id`, if it exists.
    pub fn type_info(&self, id: Option<TypeId>) -> Option<&TypeInfo> {
        self.types.get(id? as usize)
    }

    /// Approximate heap size, for cache weights.
    pub fn weight(&self) -> usize {
        fn scope_weight(scope: &Scope) -> usize {
            96 + scope.ranges.len() * 16
                + scope
                    .variables
                    .iter()
                    .map(|v| {
                        64 + v.name.len()
                            + match &v.location {
                                Location::Expression(e) | Location::Constant(e) => e.len(),
                                Location::List(list) => {
                                    list.iter().map(|r| 40 + r.expression.len()).sum()
                                }
                                Location::None | Location::Unsupported => 0,
                            }
                    })
                    .sum::<usize>()
                + scope.children.iter().map(scope_weight).sum::<usize>()
        }
        self.functions
            .iter()
            .map(|f| 64 + scope_weight(&f.scope) + f.call_sites.len() * 48)
            .sum::<usize>()
            + self.types.len() * 64
            + self.type_names.iter().map(|n| 24 + n.len()).sum::<usize>()
            + self.index.len() * 24
    }
}

impl Scope {
    /// Whether the scope covers `address`.
    pub fn covers(&self, address: u64) -> bool {
        self.ranges.iter().any(|(s, e)| (*s..*e).contains(&address))
    }

    /// The chain of scopes covering `address`, outermost (this one) first.
    pub fn chain_at(&self, address: u64) -> Vec<&Scope> {
        let mut chain = Vec::with_capacity(8);
        chain.push(self);
        let mut current = self;
        while let Some(inner) = current.children.iter().find(|c| c.covers(address)) {
            chain.push(inner);
            current = inner;
            if chain.len() > 256 {
                break;
            }
        }
        chain
    }
}

impl FunctionScope {
    /// The call whose return address is `return_address`, if the compiler described it.
    pub fn call_site(&self, return_address: u64) -> Option<&CallSite> {
        self.call_sites
            .iter()
            .find(|c| c.return_address == return_address)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Inlined calls nest deep in optimized code (iterator chains): a table with 500 levels
    /// of scopes is stored and read back whole, in order, without recursing that deep.
    #[test]
    fn deeply_nested_scopes_round_trip() {
        let leaf = |name: &str, depth: u64| Scope {
            kind: ScopeKind::Inlined(name.into()),
            ranges: vec![(depth, 1000 - depth)],
            variables: vec![VariableDecl {
                name: format!("v{depth}").into(),
                parameter: false,
                type_id: None,
                location: Location::None,
            }],
            children: Vec::new(),
        };
        let mut scope = leaf("innermost", 500);
        for depth in (1..500).rev() {
            let mut outer = leaf("call", depth);
            outer.children.push(scope);
            if depth == 7 {
                outer.children.push(leaf("sibling", 8));
            }
            scope = outer;
        }
        let function = FunctionScope {
            scope: Scope {
                kind: ScopeKind::Function("f".into()),
                ranges: vec![(0, 1000)],
                variables: Vec::new(),
                children: vec![scope],
            },
            frame_base: None,
            encoding: Encoding {
                address_size: 8,
                version: 5,
                dwarf64: false,
            },
            call_sites: Vec::new(),
        };
        let table = VariablesTable::new(0, vec![function], Vec::new());
        let back = VariablesTable::decode(&table.encode()).unwrap();
        let chain = back.function_at(500).unwrap().scope.chain_at(500);
        assert_eq!(chain.len(), 257, "chain_at stops at 256 nested scopes");
        let names: Vec<&str> = chain[1..].iter().map(|s| &*s.variables[0].name).collect();
        assert_eq!(names[..3], ["v1", "v2", "v3"]);
        let seventh = chain[7];
        assert_eq!(seventh.children.len(), 2, "the sibling kept its place");
        assert_eq!(&*seventh.children[1].variables[0].name, "v8");
        assert!(VariablesTable::decode(b"not zstd").is_err());
    }
}
