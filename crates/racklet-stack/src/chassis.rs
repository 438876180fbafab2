//! A chassis' Redfish service on the twin, as the benchmarks and the control plane's tests
//! start it: served over HTTPS from its own directory on a free loopback port, and reached
//! as its `admin` with the first-start password (`racklet up` instead gives the control
//! plane an account of its own, `racklet_gitops::onboard`).

use std::path::Path;

use std::time::Duration;

use anyhow::Context as _;
use racklet_redfish_client::Endpoint;
use racklet_rmd_api::ChassisManager;
use racklet_sim::Rack;
use racklet_twin::TwinConfig;

/// The rack of `set` on the twin (5 ms steps), its BMCs approved and enrolled, with its
/// data under `dir`.
pub fn enrolled_rack(set: &racklet_model::ManifestSet, dir: &Path) -> anyhow::Result<Rack> {
    let config = TwinConfig {
        step: Duration::from_millis(5),
        ..TwinConfig::default()
    };
    let mut rack = Rack::start(set, &config, dir, true)?;
    // Enrollment takes a few hello rounds of the daemons.
    rack.advance(Duration::from_secs(3));
    Ok(rack)
}

/// Serves `daemon`'s chassis over Redfish from `dir` (a new directory) and returns the
/// endpoint of its first-start `admin` account.
pub async fn redfish_with_admin<M>(daemon: M, dir: &Path) -> anyhow::Result<Endpoint>
where
    M: ChassisManager + Clone + 'static,
{
    let running = racklet_redfish::serve(daemon, dir, "127.0.0.1:0".parse()?).await?;
    let password_file = running.initial_password_file.with_context(|| {
        format!(
            "{} is not new: it has no first-start password",
            dir.display()
        )
    })?;
    let password = std::fs::read_to_string(&password_file)
        .with_context(|| format!("cannot read {}", password_file.display()))?;
    let cert = dir.join("tls").join("cert.pem");
    Ok(Endpoint {
        base: format!("https://{}", running.addr),
        user: "admin".into(),
        password: password.trim().to_string(),
        ca_pem: Some(
            std::fs::read(&cert).with_context(|| format!("cannot read {}", cert.display()))?,
        ),
    })
}
