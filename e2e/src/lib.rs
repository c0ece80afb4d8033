//! Test components for azlog that Azure itself cannot provide here: a fake Azure service that speaks
//! the public Entra ID, ARM and Microsoft Graph shapes, with scriptable faults.

pub mod fake_azure;
