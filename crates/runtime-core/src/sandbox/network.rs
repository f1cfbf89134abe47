//! [`PodNetwork`], the seam through which the pods domain attaches a pod to the node's
//! network: CNI today ([`Cni`]); a test puts a double behind it.

use futures_util::future::BoxFuture;

use super::cni::template::PodCidrData;
use super::cni::{Attachment, Cni, CniError, NetworkStatus, PodCidrOutcome};

/// A call to the pod network.
pub type NetworkCall<'a, T> = BoxFuture<'a, Result<T, CniError>>;

/// What attaches pods to the node's network.
pub trait PodNetwork: std::fmt::Debug + Send + Sync {
    /// Attaches the pod's network namespace; a failure leaves nothing attached.
    fn setup<'a>(&'a self, attachment: &'a Attachment) -> NetworkCall<'a, NetworkStatus>;

    /// Detaches it; succeeds when there is nothing left to detach.
    fn teardown<'a>(&'a self, attachment: &'a Attachment) -> NetworkCall<'a, ()>;

    /// Whether pods can be attached now; otherwise why not.
    fn status(&self) -> Result<(), String>;

    /// Takes the node's pod CIDRs (UpdateRuntimeConfig).
    fn set_pod_cidrs(&self, data: &PodCidrData) -> Result<PodCidrOutcome, CniError>;
}

impl PodNetwork for Cni {
    fn setup<'a>(&'a self, attachment: &'a Attachment) -> NetworkCall<'a, NetworkStatus> {
        Box::pin(self.add(attachment))
    }

    fn teardown<'a>(&'a self, attachment: &'a Attachment) -> NetworkCall<'a, ()> {
        Box::pin(self.del(attachment))
    }

    fn status(&self) -> Result<(), String> {
        self.network_ready()
    }

    fn set_pod_cidrs(&self, data: &PodCidrData) -> Result<PodCidrOutcome, CniError> {
        Cni::set_pod_cidrs(self, data)
    }
}
