//! Writes the example web server image as an OCI layout, for nodes without a registry:
//! busybox (the host's static `/bin/busybox`) serving `/www` with `httpd` on port 8080.
//!
//! ```sh
//! web-image DIR [REFERENCE]       # default reference: localhost/kubelet-lite/web:1
//! runtime-core --config runtime-core.toml import DIR
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use test_harness::image_builder::{Entry, Image, ImageConfig, Layer};
use test_harness::{oci_layout, test_images};

/// The reference the image is named by unless the command line names another.
const DEFAULT_REFERENCE: &str = "localhost/kubelet-lite/web:1";

/// The port `httpd` listens on.
const PORT: u16 = 8080;

/// The page it serves.
const INDEX_HTML: &str = "<!doctype html>\n<title>kubelet-lite</title>\n\
<h1>Hello from kubelet-lite</h1>\n\
<p>This page is served by busybox httpd in a static pod, run by kubelet-lite through its \
embedded runtime-core, from an image imported offline.</p>\n";

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(dir) = args.next().map(PathBuf::from) else {
        eprintln!("usage: web-image DIR [REFERENCE]");
        return ExitCode::from(2);
    };
    let reference = args.next().unwrap_or_else(|| DEFAULT_REFERENCE.to_owned());
    match write(&dir, &reference) {
        Ok(digest) => {
            println!("wrote {reference} ({digest}) as an OCI layout in {}", dir.display());
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("web-image: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Builds the image and writes it in `dir`; returns its manifest digest.
fn write(dir: &std::path::Path, reference: &str) -> anyhow::Result<String> {
    let page = Layer::from_entries(&[
        Entry::dir("www", 0o755),
        Entry::file("www/index.html", 0o644, INDEX_HTML),
    ])?;
    let config = ImageConfig {
        cmd: Some(
            ["httpd", "-f", "-v", "-p", &PORT.to_string(), "-h", "/www"]
                .map(String::from)
                .to_vec(),
        ),
        exposed_ports: vec![format!("{PORT}/tcp")],
        ..test_images::busybox_config()
    };
    let image = Image::new(vec![test_images::busybox_layer()?, page], &config);
    oci_layout::write(dir, &image, reference)?;
    Ok(image.digest().to_owned())
}
