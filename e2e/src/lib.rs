//! Test components for azlog: a fake Azure service that speaks the public Entra ID, ARM and
//! Microsoft Graph shapes with scriptable faults, and Azurite (the real storage emulator) with
//! Microsoft's own SDK to write to it.

pub mod azurite;
pub mod fake_azure;
pub mod fault_proxy;
