//! Wire types with Consul's exact JSON shapes (PascalCase keys, base64 byte fields,
//! mixed duration encodings). The same types are the rows of the state store, so
//! what a client writes is what it reads back.

pub mod agent;
pub mod catalog;
pub mod codec;
pub mod coordinate;
pub mod decode;
pub mod kv;
pub mod nilmap;
pub mod session;
pub mod txn;

pub use agent::*;
pub use catalog::*;
pub use coordinate::*;
pub use kv::*;
pub use nilmap::NilMap;
pub use session::*;
pub use txn::*;
