//! Image references as a pod spec or a CRI client names them: parsing must not panic, and
//! a reference that parses is normalized once and for all (its text parses to itself),
//! within the grammar's limits, with derived names that parse too.

#![no_main]

use libfuzzer_sys::fuzz_target;
use runtime_core::image::digest::Digest;
use runtime_core::image::reference::{NAME_TOTAL_LENGTH_MAX, Reference};

fuzz_target!(|input: &[u8]| {
    let Ok(text) = std::str::from_utf8(input) else { return };
    let Ok(reference) = Reference::parse(text) else { return };
    let normalized = reference.to_string();
    let again = Reference::parse(&normalized).unwrap_or_else(|e| panic!("{normalized:?} does not parse again: {e}"));
    assert_eq!(
        again, reference,
        "{text:?} normalizes to {normalized:?}, which reads differently"
    );
    assert!(reference.repository().len() <= NAME_TOTAL_LENGTH_MAX);
    assert!(reference.tag.is_some() || reference.digest.is_some());
    if let Some(tagged) = reference.tagged() {
        let tagged = Reference::parse(&tagged).expect("the tagged form parses");
        assert_eq!(
            (tagged.domain, tagged.path),
            (reference.domain.clone(), reference.path.clone())
        );
    }
    let digest = Digest::of(input);
    let canonical = Reference::parse(&reference.canonical(&digest)).expect("the canonical form parses");
    assert_eq!(canonical.digest.as_ref(), Some(&digest));
    assert!(!reference.default_upstream_host().is_empty());
    let digest_text = reference.manifest_reference();
    assert!(digest_text.starts_with("sha256:") || Some(digest_text) == reference.tag.as_deref());
});
