//! `crds/*.yaml` and the chart's copy in `charts/azlog/crds/` are generated from the Rust types;
//! this fails when someone changes one without the others.

#[test]
fn the_crd_files_match_the_rust_types() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for dir in ["crds", "charts/azlog/crds"] {
        for (file, crd) in azlog_operator::crd::all() {
            let expected = azlog_operator::crd::to_yaml(&crd).expect("yaml");
            let on_disk = std::fs::read_to_string(root.join(dir).join(file)).unwrap_or_else(|e| {
                panic!(
                    "{dir}/{file} is missing ({e}): run `cargo run -p azlog-operator --bin crdgen`"
                )
            });
            assert!(
                on_disk == expected,
                "{dir}/{file} differs from the Rust types: run `cargo run -p azlog-operator --bin crdgen` and commit the result"
            );
        }
    }
}

#[test]
fn the_example_logsources_render() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("examples/") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if !name.starts_with("logsource") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read");
        let source: azlog_operator::crd::LogSource =
            serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        azlog_operator::render::render(&source).unwrap_or_else(|e| panic!("{name}: {e}"));
        seen += 1;
    }
    assert!(seen > 0, "no examples/logsource*.yaml found");
}

#[test]
fn the_example_subscription_authorization_plans() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/subscriptionauthorization.yaml");
    let text = std::fs::read_to_string(&path).expect("read");
    let mut resource: azlog_operator::crd::SubscriptionAuthorization =
        serde_yaml::from_str(&text).expect("a SubscriptionAuthorization");
    resource.metadata.uid = Some("0b5c2f0e-1111-4222-8333-444455556666".into());
    let plan = azlog_operator::authorization::plan::plan(&resource).expect("a valid spec");
    assert!(plan.audit_logs);
    assert_eq!(plan.subscriptions.map(|s| s.len()), Some(1));
}
