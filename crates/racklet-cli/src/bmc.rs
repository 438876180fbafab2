//! `racklet bmc list|approve|reject`: the BMCs in the nodes' trays as their chassis see
//! them, and an operator's decision about one that waits for approval. Both go through
//! the control plane's API (which asks the chassis' Redfish service); a decision names the
//! identity the operator checked, so a BMC swapped in meanwhile is not the one decided on.

use std::path::Path;

use racklet_client::changes::{ActionRequest, NodeAction};

use crate::change::{author, CommitArgs};
use crate::get::{client, runtime};

/// `bmc list`: every node's BMC, its trust, and the identity of one that waits.
pub fn list(data_dir: &Path) -> anyhow::Result<()> {
    runtime()?.block_on(async {
        let cp = client(data_dir)?;
        let mut rows = Vec::new();
        for n in cp.nodes().await?.items {
            let name = n.metadata.name.clone();
            rows.push(match cp.bmc(&name).await {
                Ok(b) => vec![
                    name,
                    b.chassis,
                    b.tray.to_string(),
                    b.serial,
                    b.trust,
                    b.identity.or(b.reason).unwrap_or_default(),
                ],
                Err(e) => vec![
                    name,
                    n.spec.chassis,
                    n.spec.tray.to_string(),
                    String::new(),
                    "<unreadable>".into(),
                    e.to_string(),
                ],
            });
        }
        print!(
            "{}",
            crate::view::table(
                &[
                    "NODE",
                    "CHASSIS",
                    "TRAY",
                    "SERIAL",
                    "TRUST",
                    "IDENTITY / REASON"
                ],
                &rows
            )
        );
        Ok(())
    })
}

/// `bmc approve|reject NODE --identity HEX`.
pub fn decide(
    data_dir: &Path,
    node: &str,
    identity: Option<&str>,
    approve: bool,
    commit: &CommitArgs,
) -> anyhow::Result<()> {
    runtime()?.block_on(async {
        let cp = client(data_dir)?;
        let Some(identity) = identity else {
            let b = cp.bmc(node).await?;
            match b.identity {
                Some(id) => anyhow::bail!(
                    "{node}'s BMC (serial {}) shows identity {id}; check that it is the BMC you installed, then run this again with --identity {id}",
                    b.serial
                ),
                None => anyhow::bail!(
                    "{node}'s BMC does not wait for approval (it is {})",
                    b.trust
                ),
            }
        };
        let request = ActionRequest {
            action: if approve {
                NodeAction::ApproveBmc
            } else {
                NodeAction::RejectBmc
            },
            force: false,
            author: Some(author(commit)?),
            bmc_identity: Some(identity.to_string()),
        };
        cp.act(node, &request).await?;
        if approve {
            println!("{node}: BMC {identity} approved; its chassis enrolls it now");
        } else {
            println!("{node}: BMC {identity} rejected; its chassis will not trust it (racklet bmc forget {node} to enroll it after all)");
        }
        Ok(())
    })
}
