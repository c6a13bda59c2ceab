//! Request input: the extractors that read it ([`extract`]) and the newtypes that are
//! valid once parsed ([`domain`]).

pub mod domain;
pub mod extract;

pub use domain::{
    boolean, id, is_common_password, string, Name, NewPassword, Price, Username, MAX_PASSWORD_BYTES,
};
pub use extract::{
    json_error, parse_object, path_error, path_id, query_error, query_map, Fields, FromJsonBody,
    JsonObject, Page, ValidJson,
};
