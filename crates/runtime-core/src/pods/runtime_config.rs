//! UpdateRuntimeConfig: the node's pod CIDRs, which the kubelet learns from its Node,
//! reach the pod network (which renders its configuration template with them, if it has
//! one and no network yet).

use cri_api::v1::{UpdateRuntimeConfigRequest, UpdateRuntimeConfigResponse};

use super::{Pods, PodsError};
use crate::sandbox::cni::PodCidrOutcome;
use crate::sandbox::cni::template::{PodCidrData, parse_pod_cidrs};

impl Pods {
    /// UpdateRuntimeConfig: `network_config.pod_cidr` (comma-separated CIDRs) goes to the
    /// pod network. An empty one changes nothing (as containerd, which also refuses one
    /// of white space only); a malformed one is Invalid.
    pub fn update_runtime_config(
        &self,
        request: UpdateRuntimeConfigRequest,
    ) -> Result<UpdateRuntimeConfigResponse, PodsError> {
        let text = (request.runtime_config)
            .and_then(|config| config.network_config)
            .map(|network| network.pod_cidr)
            .unwrap_or_default();
        if text.is_empty() {
            return Ok(UpdateRuntimeConfigResponse {});
        }
        let ranges = parse_pod_cidrs(&text).map_err(PodsError::invalid)?;
        let outcome = (self.network)
            .set_pod_cidrs(&PodCidrData::new(ranges))
            .map_err(|err| PodsError::failed("configuring the pod network", err))?;
        match outcome {
            PodCidrOutcome::NoTemplate => tracing::info!(
                pod_cidr = %text,
                "no cni config template: the pod network is left to the configuration directory"
            ),
            PodCidrOutcome::AlreadyConfigured(source) => tracing::debug!(
                pod_cidr = %text,
                source = %source.display(),
                "a cni network is configured: the template is not rendered"
            ),
            PodCidrOutcome::Rendered(_) => {}
        }
        Ok(UpdateRuntimeConfigResponse {})
    }
}
