//! Azure roles by name, and how ARM matches an action against a role's `actions` and
//! `notActions`.

/// A built-in Azure role the operator knows by name. Other roles (custom ones included) are named
/// by their role definition id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuiltInRole {
    pub name: &'static str,
    /// The role definition's GUID, the same in every subscription and cloud.
    pub id: &'static str,
}

pub const READER: BuiltInRole = BuiltInRole {
    name: "Reader",
    id: "acdd72a7-3385-48ef-bd42-f606fba81ae7",
};
pub const SECURITY_READER: BuiltInRole = BuiltInRole {
    name: "Security Reader",
    id: "39bc4728-0917-49c7-9d2c-d95423bc2eb4",
};
pub const MONITORING_READER: BuiltInRole = BuiltInRole {
    name: "Monitoring Reader",
    id: "43d0d8ad-25c7-4714-9337-8ba259a9fe05",
};
pub const CONTRIBUTOR: BuiltInRole = BuiltInRole {
    name: "Contributor",
    id: "b24988ac-6180-42a0-ab88-20f7382dd24c",
};
pub const OWNER: BuiltInRole = BuiltInRole {
    name: "Owner",
    id: "8e3af657-a8ff-443c-a75c-2fe8c4bcb635",
};
pub const USER_ACCESS_ADMINISTRATOR: BuiltInRole = BuiltInRole {
    name: "User Access Administrator",
    id: "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9",
};

/// The roles `spec.role` may name. Collecting needs read access only; the write roles are here so
/// that a name an administrator types is recognised, not so that they are recommended.
pub const BUILT_IN: &[BuiltInRole] = &[
    READER,
    SECURITY_READER,
    MONITORING_READER,
    CONTRIBUTOR,
    OWNER,
    USER_ACCESS_ADMINISTRATOR,
];

/// The built-in role named `name` (case-insensitive, as the portal matches them).
pub fn built_in(name: &str) -> Option<BuiltInRole> {
    BUILT_IN
        .iter()
        .copied()
        .find(|r| r.name.eq_ignore_ascii_case(name.trim()))
}

/// Whether a role with `actions` and `not_actions` allows `action`: some action matches it and no
/// not-action does. `*` matches any run of characters, `/` included; the comparison ignores case.
pub fn permits(actions: &[String], not_actions: &[String], action: &str) -> bool {
    actions.iter().any(|a| matches(a, action)) && !not_actions.iter().any(|n| matches(n, action))
}

fn matches(pattern: &str, action: &str) -> bool {
    let pattern = pattern.to_ascii_lowercase();
    let action = action.to_ascii_lowercase();
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = action.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        // No wildcard: the whole action must be the pattern.
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn wildcards_match_as_arm_matches_them() {
        let write = "Microsoft.Authorization/roleAssignments/write";
        assert!(permits(&strings(&["*"]), &[], write));
        assert!(permits(
            &strings(&["Microsoft.Authorization/*"]),
            &[],
            write
        ));
        assert!(permits(
            &strings(&["microsoft.authorization/*/WRITE"]),
            &[],
            write
        ));
        assert!(!permits(&strings(&["*/read"]), &[], write));
        assert!(permits(
            &strings(&["*/read"]),
            &[],
            "microsoft.insights/eventtypes/values/read"
        ));
        assert!(!permits(
            &strings(&["Microsoft.Authorization/roleAssignments/read"]),
            &[],
            write
        ));
        // Contributor: everything except writing access.
        assert!(!permits(
            &strings(&["*"]),
            &strings(&["Microsoft.Authorization/*/Write"]),
            write
        ));
        assert!(permits(&strings(&[write]), &[], write));
        assert!(!permits(
            &strings(&["Microsoft.Authorization/roleAssignments"]),
            &[],
            write
        ));
    }

    #[test]
    fn role_names_are_matched_without_regard_to_case() {
        assert_eq!(built_in("security reader"), Some(SECURITY_READER));
        assert_eq!(built_in(" Reader "), Some(READER));
        assert_eq!(built_in("Readr"), None);
    }
}
