//! Microsoft Graph identifiers the operator needs: the Graph application and the app role that
//! lets an application read Entra audit logs.

/// The application id of Microsoft Graph, the same in every tenant.
pub const GRAPH_APP_ID: &str = "00000003-0000-0000-c000-000000000000";

/// The id of Graph's `AuditLog.Read.All` application permission (app role), which the Entra
/// directoryAudits and signIns APIs require.
pub const AUDIT_LOG_READ_ALL: &str = "b0afded3-3588-46d8-8b3d-9842eff778da";
