//! Azure's public REST examples, kept under `collector/testdata/azure-examples`.

use std::path::Path;

use serde_json::Value;

/// The first record of the 200 answer of the example `name`.
pub fn first_record(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../collector/testdata/azure-examples")
        .join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let value: Value = serde_json::from_str(&text).expect("example JSON");
    value["responses"]["200"]["body"]["value"][0].clone()
}
