//! Variables: the values of parameters and locals in a crash's frames. A module's debug file
//! gives each function's scopes and where each variable lives ([`table`], built from DWARF by
//! [`dwarf`] or from a PDB by [`codeview`], and stored as a derived cache); a walked thread's frames give the registers and the
//! dump the memory ([`frames`]); location expressions are evaluated with gimli ([`eval`]) and
//! the bytes read as their types say ([`render`]; standard containers by what they hold,
//! [`containers`]); the fault address is traced back to the
//! variable it came from ([`fault`]).

pub mod codeview;
pub mod containers;
pub mod dwarf;
pub mod eval;
pub mod fault;
pub mod frames;
pub mod render;
pub mod table;
pub mod text;

pub use eval::Unavailable;
pub use fault::FaultVariable;
pub use frames::{
    fault_variable, thread_variables, CrashAddressMap, DumpMemory, Variable, VariableKind,
};
pub use render::{RenderLimits, Value};
pub use table::VariablesTable;

use symbolic::debuginfo::Object;

/// The variables table of a debug file: from its DWARF (ELF, Mach-O, WebAssembly) or a PDB's
/// CodeView records; empty for any other format.
pub fn table_of(object: &Object<'_>) -> Result<VariablesTable, String> {
    match object {
        Object::Pdb(pdb) => codeview::build(pdb.data()),
        _ => dwarf::build(object),
    }
}
