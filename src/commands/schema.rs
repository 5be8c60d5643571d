//! `berth schema`: the JSON Schema (draft-07) of the app spec format.

use super::{Exit, print};

pub(crate) fn exec() -> anyhow::Result<Exit> {
    print(crate::spec::schema::schema_text(), Exit::Ok)?;
    Ok(Exit::Ok)
}
