//! Running commands in containers: ExecSync, and the streaming Exec and Attach (which only
//! hand out a URL of the runtime's streaming server).

use std::time::Duration;

use cri_api::client::RuntimeServiceClient;
use cri_api::v1::{AttachRequest, ExecRequest, ExecSyncRequest, ExecSyncResponse};

use crate::client::{Client, Deadline, Result};
use crate::container::seconds;

impl Client {
    /// ExecSync: runs `cmd` in the container and returns its stdout, stderr and exit code.
    ///
    /// `timeout` (whole seconds, rounded up) is the runtime's limit for the command; zero
    /// means none. The call's deadline is `timeout` plus the call timeout, as the kubelet
    /// does "to leave some time for the runtime to do cleanup"; with a zero `timeout` the
    /// call has no deadline. A non-zero exit code is not an error: read `exit_code`.
    ///
    /// ```no_run
    /// # async fn f(client: &cri_client::Client, id: &str) -> cri_client::Result<()> {
    /// use std::time::Duration;
    /// let out = client.exec_sync(id, ["cat", "/etc/hostname"], Duration::from_secs(5)).await?;
    /// println!("{} (exit {})", String::from_utf8_lossy(&out.stdout), out.exit_code);
    /// # Ok(()) }
    /// ```
    pub async fn exec_sync<I, S>(&self, container_id: &str, cmd: I, timeout: Duration) -> Result<ExecSyncResponse>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let request = ExecSyncRequest {
            container_id: container_id.to_owned(),
            cmd: cmd.into_iter().map(Into::into).collect(),
            timeout: seconds(timeout),
        };
        let deadline = if timeout.is_zero() {
            Deadline::Exactly(None)
        } else {
            Deadline::AfterDefault(timeout)
        };
        self.call(
            "ExecSync",
            container_id,
            deadline,
            request,
            RuntimeServiceClient::exec_sync,
        )
        .await
    }

    /// Exec: the URL where the runtime's streaming server runs `request.cmd` with the
    /// requested stdio streams and TTY.
    pub async fn exec(&self, request: ExecRequest) -> Result<String> {
        let subject = request.container_id.clone();
        self.call("Exec", &subject, Deadline::Default, request, RuntimeServiceClient::exec)
            .await
            .map(|response| response.url)
    }

    /// Attach: the URL where the runtime's streaming server attaches to the container's
    /// main process.
    pub async fn attach(&self, request: AttachRequest) -> Result<String> {
        let subject = request.container_id.clone();
        self.call(
            "Attach",
            &subject,
            Deadline::Default,
            request,
            RuntimeServiceClient::attach,
        )
        .await
        .map(|response| response.url)
    }
}
