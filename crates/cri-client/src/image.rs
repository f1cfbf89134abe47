//! The image service: ListImages, ImageStatus, PullImage, RemoveImage and ImageFsInfo.

use cri_api::client::ImageServiceClient;
use cri_api::v1::{
    AuthConfig, Image, ImageFilter, ImageFsInfoRequest, ImageFsInfoResponse, ImageSpec, ImageStatusRequest,
    ImageStatusResponse, ListImagesRequest, PodSandboxConfig, PullImageRequest, RemoveImageRequest,
};

use crate::client::{Client, Deadline, Result};

/// Something that names an image: a reference such as `"docker.io/library/busybox:1.36"`,
/// an image id, or a full [`ImageSpec`] (with annotations or a runtime handler).
pub trait IntoImageSpec {
    /// The image spec for the CRI request.
    fn into_image_spec(self) -> ImageSpec;
}

impl IntoImageSpec for ImageSpec {
    fn into_image_spec(self) -> ImageSpec {
        self
    }
}

impl IntoImageSpec for &ImageSpec {
    fn into_image_spec(self) -> ImageSpec {
        self.clone()
    }
}

impl IntoImageSpec for &str {
    fn into_image_spec(self) -> ImageSpec {
        ImageSpec {
            image: self.to_owned(),
            ..ImageSpec::default()
        }
    }
}

impl IntoImageSpec for String {
    fn into_image_spec(self) -> ImageSpec {
        ImageSpec {
            image: self,
            ..ImageSpec::default()
        }
    }
}

impl IntoImageSpec for &String {
    fn into_image_spec(self) -> ImageSpec {
        self.as_str().into_image_spec()
    }
}

impl Client {
    /// ListImages: the images the runtime holds, or those matching `filter`.
    pub async fn list_images(&self, filter: Option<ImageFilter>) -> Result<Vec<Image>> {
        let request = ListImagesRequest { filter };
        self.call(
            "ListImages",
            "",
            Deadline::Default,
            request,
            ImageServiceClient::list_images,
        )
        .await
        .map(|response| response.images)
    }

    /// ImageStatus: the image, or `image: None` in the response if the runtime does not
    /// have it (that is not an error, per api.proto). With `verbose`, runtime-specific
    /// details in `info`.
    pub async fn image_status(&self, image: impl IntoImageSpec, verbose: bool) -> Result<ImageStatusResponse> {
        let image = image.into_image_spec();
        let subject = image.image.clone();
        let request = ImageStatusRequest {
            image: Some(image),
            verbose,
        };
        self.call(
            "ImageStatus",
            &subject,
            Deadline::Default,
            request,
            ImageServiceClient::image_status,
        )
        .await
    }

    /// PullImage: pulls the image (with registry credentials `auth`, for the pod
    /// `sandbox_config` if given) and returns the runtime's reference to it, usually its id.
    ///
    /// Its deadline is [`Options::pull_image_timeout`](crate::Options::pull_image_timeout):
    /// none by default, as pulls of large images legitimately take minutes.
    pub async fn pull_image(
        &self,
        image: impl IntoImageSpec,
        auth: Option<AuthConfig>,
        sandbox_config: Option<PodSandboxConfig>,
    ) -> Result<String> {
        let image = image.into_image_spec();
        let subject = image.image.clone();
        let request = PullImageRequest {
            image: Some(image),
            auth,
            sandbox_config,
        };
        let deadline = Deadline::Exactly(self.options().get_pull_image_timeout());
        self.call("PullImage", &subject, deadline, request, ImageServiceClient::pull_image)
            .await
            .map(|response| response.image_ref)
    }

    /// RemoveImage: removes the image. Idempotent: it "must not return an error if the
    /// image has already been removed" (api.proto).
    pub async fn remove_image(&self, image: impl IntoImageSpec) -> Result<()> {
        let image = image.into_image_spec();
        let subject = image.image.clone();
        let request = RemoveImageRequest { image: Some(image) };
        self.call(
            "RemoveImage",
            &subject,
            Deadline::Default,
            request,
            ImageServiceClient::remove_image,
        )
        .await
        .map(drop)
    }

    /// ImageFsInfo: usage of the filesystems holding images and container layers.
    pub async fn image_fs_info(&self) -> Result<ImageFsInfoResponse> {
        self.call(
            "ImageFsInfo",
            "",
            Deadline::Default,
            ImageFsInfoRequest {},
            ImageServiceClient::image_fs_info,
        )
        .await
    }
}
