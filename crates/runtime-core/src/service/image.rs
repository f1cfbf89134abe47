//! The CRI `ImageService`, over the [`ImageManager`].

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use cri_api::server::ImageService;
use cri_api::v1::{
    FilesystemIdentifier, FilesystemUsage, Image, ImageFsInfoRequest, ImageFsInfoResponse, ImageSpec,
    ImageStatusRequest, ImageStatusResponse, Int64Value, ListImagesRequest, ListImagesResponse, PullImageRequest,
    PullImageResponse, RemoveImageRequest, RemoveImageResponse, UInt64Value,
};
use tonic::{Request, Response, Status};

use super::status::image_status;
use crate::image::digest::Digest;
use crate::image::manager::{ImageError, ImageManager, parse_name};
use crate::image::records::{self, ImageRecord};
use crate::image::registry::Credentials;

/// Key of the verbose `ImageStatus` info, as containerd names it.
const VERBOSE_INFO_KEY: &str = "info";

/// Tells which image layers (by diff id) containers use, so image removal keeps them.
pub type LayersInUse = Arc<dyn Fn() -> HashSet<Digest> + Send + Sync>;

/// The `ImageService` of runtime-core.
#[derive(Clone)]
pub struct ImageServiceImpl {
    images: Arc<ImageManager>,
    layers_in_use: LayersInUse,
}

impl std::fmt::Debug for ImageServiceImpl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageServiceImpl")
            .field("images", &self.images)
            .finish_non_exhaustive()
    }
}

impl ImageServiceImpl {
    /// Serves the images of `images`, with no layer in use by containers.
    pub fn new(images: Arc<ImageManager>) -> Self {
        Self {
            images,
            layers_in_use: Arc::new(HashSet::new),
        }
    }

    /// Asks `layers_in_use` which layers containers use before removing an image.
    pub fn with_layers_in_use(mut self, layers_in_use: LayersInUse) -> Self {
        self.layers_in_use = layers_in_use;
        self
    }
}

/// The image named by a request's `ImageSpec`, which must not be empty.
fn requested_image(spec: Option<&ImageSpec>) -> Result<&str, Status> {
    match spec.map(|s| s.image.as_str()) {
        Some(image) if !image.is_empty() => Ok(image),
        _ => Err(Status::invalid_argument("image must be set")),
    }
}

fn to_status(error: ImageError) -> Status {
    let status = image_status(&error);
    tracing::warn!(%error, code = ?status.code(), "image request failed");
    status
}

/// The CRI view of an image record.
fn to_cri(record: &ImageRecord) -> Image {
    let (uid, username) = image_user(&record.user);
    Image {
        id: record.id.to_string(),
        repo_tags: record.repo_tags.clone(),
        repo_digests: record.repo_digests.clone(),
        size: record.size,
        uid: uid.map(|value| Int64Value { value }),
        username,
        spec: Some(ImageSpec {
            image: record.id.to_string(),
            ..Default::default()
        }),
        pinned: record.pinned,
    }
}

/// Splits an image's `User` (`name`, `uid`, `name:group`, `uid:gid`) into the uid or the
/// user name CRI reports, as containerd does: a numeric user is a uid, anything else a name.
fn image_user(user: &str) -> (Option<i64>, String) {
    let user = user.split(':').next().unwrap_or_default();
    if user.is_empty() {
        return (None, String::new());
    }
    match user.parse::<i64>() {
        Ok(uid) => (Some(uid), String::new()),
        Err(_) => (None, user.to_string()),
    }
}

fn now_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

#[tonic::async_trait]
impl ImageService for ImageServiceImpl {
    async fn list_images(&self, request: Request<ListImagesRequest>) -> Result<Response<ListImagesResponse>, Status> {
        let filter = request
            .into_inner()
            .filter
            .and_then(|f| f.image)
            .map(|s| s.image)
            .filter(|i| !i.is_empty());
        let all = self.images.list().map_err(to_status)?;
        let images = match filter {
            None => all.iter().map(to_cri).collect(),
            Some(name) => {
                let name = parse_name(&name).map_err(|e| Status::invalid_argument(e.to_string()))?;
                records::find(&all, &name).map(to_cri).into_iter().collect()
            }
        };
        Ok(Response::new(ListImagesResponse { images }))
    }

    async fn image_status(
        &self,
        request: Request<ImageStatusRequest>,
    ) -> Result<Response<ImageStatusResponse>, Status> {
        let request = request.into_inner();
        let name = requested_image(request.image.as_ref())?;
        // An image that is not present is not an error: the reply has no image.
        let Some(record) = self.images.find(name).map_err(to_status)? else {
            return Ok(Response::new(ImageStatusResponse::default()));
        };
        let mut info = HashMap::new();
        if request.verbose {
            let config = self.images.config_of(&record.id).await.map_err(to_status)?;
            let verbose = serde_json::json!({
                "imageSpec": config,
                "manifestDigest": record.manifest,
                "layers": record.layers,
            });
            info.insert(VERBOSE_INFO_KEY.to_string(), verbose.to_string());
        }
        Ok(Response::new(ImageStatusResponse {
            image: Some(to_cri(&record)),
            info,
        }))
    }

    async fn pull_image(&self, request: Request<PullImageRequest>) -> Result<Response<PullImageResponse>, Status> {
        let request = request.into_inner();
        let image = requested_image(request.image.as_ref())?;
        let credentials = match &request.auth {
            Some(auth) => Credentials::from_cri(auth).map_err(|e| Status::invalid_argument(e.to_string()))?,
            None => Credentials::default(),
        };
        let record = self.images.pull(image, &credentials).await.map_err(to_status)?;
        Ok(Response::new(PullImageResponse {
            image_ref: record.id.to_string(),
        }))
    }

    async fn remove_image(
        &self,
        request: Request<RemoveImageRequest>,
    ) -> Result<Response<RemoveImageResponse>, Status> {
        let request = request.into_inner();
        let image = requested_image(request.image.as_ref())?;
        // The CRI requires removal to succeed when the image is already gone.
        self.images
            .remove(image, &*self.layers_in_use)
            .await
            .map_err(to_status)?;
        Ok(Response::new(RemoveImageResponse {}))
    }

    async fn image_fs_info(&self, _: Request<ImageFsInfoRequest>) -> Result<Response<ImageFsInfoResponse>, Status> {
        let usage = self.images.fs_usage().await.map_err(to_status)?;
        let filesystem = FilesystemUsage {
            timestamp: now_nanos(),
            fs_id: Some(FilesystemIdentifier {
                mountpoint: self.images.root().display().to_string(),
            }),
            used_bytes: Some(UInt64Value { value: usage.bytes }),
            inodes_used: Some(UInt64Value { value: usage.inodes }),
        };
        Ok(Response::new(ImageFsInfoResponse {
            image_filesystems: vec![filesystem],
            container_filesystems: Vec::new(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_users_split_into_uid_or_name() {
        let cases = [
            ("unset", "", (None, "")),
            ("uid", "1000", (Some(1000), "")),
            ("uid and gid", "65532:65532", (Some(65532), "")),
            ("name", "nobody", (None, "nobody")),
            ("name and group", "www:www", (None, "www")),
        ];
        for (desc, user, (uid, name)) in cases {
            assert_eq!(image_user(user), (uid, name.to_string()), "{desc}");
        }
    }
}
