//! The fake's gRPC face: the `RuntimeService` and `ImageService` impls. Each RPC is
//! recorded, suffers the fault injected into it, then asks the state; a refusal becomes a
//! status here and nowhere else.

mod image;
mod runtime;

use std::any::Any;
use std::fmt::Debug;

use tonic::{Request, Response, Status};

use super::rpc::Authority;
use super::state::State;
use super::{Call, FakeError, FakeRuntime, Rpc, lock};

/// The services of one [`FakeRuntime`].
#[derive(Debug, Clone)]
pub(super) struct Service(pub(super) FakeRuntime);

impl Service {
    /// Records the call, then waits for and returns what its fault says; the request
    /// message if there is no error.
    async fn enter<T>(&self, rpc: Rpc, request: Request<T>) -> Result<T, Status>
    where
        T: Any + Debug + Clone + Send + Sync,
    {
        let (metadata, extensions, message) = request.into_parts();
        let call = Call::new(rpc, &metadata, extensions.get::<Authority>(), message.clone());
        lock(&self.0.shared.calls).push(call);
        let drawn = lock(&self.0.shared.faults).draw(rpc);
        if let Some(delay) = drawn.delay {
            tokio::time::sleep(delay).await;
        }
        match drawn.error {
            Some(status) => Err(status),
            None => Ok(message),
        }
    }

    /// Enters the call, then answers it with what `op` makes of the state.
    async fn answer<Req, Resp>(
        &self,
        rpc: Rpc,
        request: Request<Req>,
        op: impl FnOnce(&mut State, Req) -> Result<Resp, FakeError>,
    ) -> Result<Response<Resp>, Status>
    where
        Req: Any + Debug + Clone + Send + Sync,
    {
        let message = self.enter(rpc, request).await?;
        let response = op(&mut lock(&self.0.shared.state), message)?;
        Ok(Response::new(response))
    }
}
