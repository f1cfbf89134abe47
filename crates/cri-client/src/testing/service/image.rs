//! `ImageService`.

use tonic::{Request, Response, Status};

use crate::testing::Rpc;
use crate::v1::image_service_server::ImageService;
use crate::v1::{
    ImageFsInfoRequest, ImageFsInfoResponse, ImageStatusRequest, ImageStatusResponse, ListImagesRequest,
    ListImagesResponse, PullImageRequest, PullImageResponse, RemoveImageRequest, RemoveImageResponse,
};

use super::Service;

#[tonic::async_trait]
impl ImageService for Service {
    async fn list_images(&self, request: Request<ListImagesRequest>) -> Result<Response<ListImagesResponse>, Status> {
        self.answer(Rpc::ListImages, request, |state, r| {
            Ok(ListImagesResponse {
                images: state.list_images(r.filter),
            })
        })
        .await
    }

    async fn image_status(
        &self,
        request: Request<ImageStatusRequest>,
    ) -> Result<Response<ImageStatusResponse>, Status> {
        self.answer(Rpc::ImageStatus, request, |state, r| {
            Ok(ImageStatusResponse {
                image: state.image_status(r.image.as_ref()),
                info: Default::default(),
            })
        })
        .await
    }

    async fn pull_image(&self, request: Request<PullImageRequest>) -> Result<Response<PullImageResponse>, Status> {
        self.answer(Rpc::PullImage, request, |state, r| {
            let image_ref = state.pull_image(r.image)?;
            Ok(PullImageResponse { image_ref })
        })
        .await
    }

    async fn remove_image(
        &self,
        request: Request<RemoveImageRequest>,
    ) -> Result<Response<RemoveImageResponse>, Status> {
        self.answer(Rpc::RemoveImage, request, |state, r| {
            state.remove_image(r.image.as_ref()).map(|()| RemoveImageResponse {})
        })
        .await
    }

    async fn image_fs_info(
        &self,
        request: Request<ImageFsInfoRequest>,
    ) -> Result<Response<ImageFsInfoResponse>, Status> {
        self.answer(Rpc::ImageFsInfo, request, |state, _| Ok(state.image_fs_info()))
            .await
    }
}
