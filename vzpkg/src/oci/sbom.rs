//! An SPDX 2.3 JSON SBOM of a template's packages, from its lock: name,
//! version, architecture, the package file's SHA-256 and a package URL.

use crate::store::TemplateDetails;
use serde_json::json;

fn recipe_source_kind(recipe: &str) -> Option<String> {
    let t: toml::Table = toml::from_str(recipe).ok()?;
    t.get("source")?.get("kind")?.as_str().map(str::to_string)
}

/// The SPDX document for template `d`, pushed as image `image_digest`.
pub fn spdx(d: &TemplateDetails, image_digest: &str) -> Vec<u8> {
    let kind = recipe_source_kind(&d.recipe).unwrap_or_else(|| "generic".into());
    let distro = d
        .info
        .names
        .first()
        .and_then(|n| n.split('-').next())
        .unwrap_or("linux")
        .to_ascii_lowercase();
    let created = chrono::DateTime::from_timestamp(d.info.created, 0)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".into());
    let mut packages = Vec::new();
    let mut relationships = Vec::new();
    for (i, p) in d.package_list.iter().enumerate() {
        let id = format!("SPDXRef-Package-{i}");
        let purl_type = match kind.as_str() {
            "deb" => "deb",
            "rpm" => "rpm",
            _ => "generic",
        };
        let mut pkg = json!({
            "SPDXID": id,
            "name": p.name,
            "versionInfo": p.version,
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": false,
            "externalRefs": [{
                "referenceCategory": "PACKAGE-MANAGER",
                "referenceType": "purl",
                "referenceLocator": format!("pkg:{purl_type}/{distro}/{}@{}?arch={}", p.name, p.version, p.architecture),
            }],
        });
        if p.sha256.len() == 64 {
            pkg["checksums"] = json!([{"algorithm": "SHA256", "checksumValue": p.sha256}]);
        }
        packages.push(pkg);
        relationships.push(json!({
            "spdxElementId": "SPDXRef-DOCUMENT",
            "relationshipType": "DESCRIBES",
            "relatedSpdxElement": id,
        }));
    }
    let doc = json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": format!("vzpkg template {}", d.info.id),
        "documentNamespace": format!("urn:vzpkg:template:{}:image:{}", d.info.id, image_digest),
        "creationInfo": {
            "created": created,
            "creators": [concat!("Tool: vzpkg-", env!("CARGO_PKG_VERSION"))],
        },
        "packages": packages,
        "relationships": relationships,
    });
    serde_json::to_vec_pretty(&doc).unwrap_or_default()
}
