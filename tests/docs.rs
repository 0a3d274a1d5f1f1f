//! The documents a person with a clone reads point only at what the clone has: every relative
//! link in a Markdown file resolves, nothing names a design document kept outside the
//! repository, and every source path and name the maps (ARCHITECTURE.md, CONTRIBUTING.md)
//! give is there.

use std::path::{Path, PathBuf};

/// Files of the repository a reader opens (build output and dependencies left out).
fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("a readable directory") {
        let path = entry.expect("a directory entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if path.is_dir() {
            if !matches!(name, "target" | "node_modules" | "dist") && !name.starts_with('.') {
                files(&path, out);
            }
        } else {
            out.push(path);
        }
    }
}

fn repository() -> Vec<PathBuf> {
    let mut out = Vec::new();
    files(Path::new(env!("CARGO_MANIFEST_DIR")), &mut out);
    out
}

#[test]
fn every_relative_link_in_the_markdown_resolves() {
    let mut broken = Vec::new();
    for path in repository()
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
    {
        let text = std::fs::read_to_string(&path).expect("UTF-8 Markdown");
        for (i, _) in text.match_indices("](") {
            let rest = &text[i + 2..];
            let Some(end) = rest.find(')') else { continue };
            let target = rest[..end].split('#').next().unwrap_or_default();
            if target.is_empty() || target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            if !path.parent().unwrap().join(target).exists() {
                broken.push(format!("{}: {target}", path.display()));
            }
        }
    }
    assert!(broken.is_empty(), "links to nothing: {broken:#?}");
}

#[test]
fn nothing_points_at_documents_a_clone_lacks() {
    let names = [
        "API.md",
        "DESIGN.md",
        "STYLE.md",
        "TECH-FACTS.md",
        "../shared",
    ];
    let mut found = Vec::new();
    for path in repository() {
        // An applied migration's text is checksummed by every database it ran on: it cannot
        // change, comments included.
        if path.components().any(|c| c.as_os_str() == "migrations") {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        for name in names {
            if text.contains(name) && !path.ends_with("tests/docs.rs") {
                found.push(format!("{} names {name}", path.display()));
            }
        }
    }
    assert!(found.is_empty(), "{found:#?}");
}

/// Whether `text` defines `name` (a function, type, constant, module or enum variant).
fn defines(text: &str, name: &str) -> bool {
    let words = [
        "fn",
        "struct",
        "enum",
        "const",
        "static",
        "type",
        "trait",
        "mod",
        "macro_rules!",
    ];
    words.iter().any(|w| {
        text.match_indices(&format!("{w} {name}")).any(|(i, m)| {
            let after = text[i + m.len()..].chars().next();
            let before = text[..i].chars().next_back();
            !after.is_some_and(|c| c.is_alphanumeric() || c == '_')
                && !before.is_some_and(|c| c.is_alphanumeric() || c == '_')
        })
    }) || text.contains(&format!("    {name}("))
        || text.contains(&format!("    {name} {{"))
        || text.contains(&format!("    {name},"))
}

#[test]
fn every_source_path_and_name_the_maps_give_exists() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let sources: Vec<PathBuf> = repository()
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .collect();
    let mut missing = Vec::new();
    for doc in ["ARCHITECTURE.md", "CONTRIBUTING.md"] {
        let text = std::fs::read_to_string(root.join(doc)).expect("the document");
        for quoted in text.split('`').skip(1).step_by(2) {
            let (path, names) = match quoted.split_once("::") {
                Some((path, names)) => (path, Some(names)),
                None => (quoted, None),
            };
            if !path.ends_with(".rs") || path.contains(char::is_whitespace) {
                continue;
            }
            // A path from the top, or the end of one (`room/decide.rs`, `session.rs`).
            let files: Vec<&PathBuf> = sources
                .iter()
                .filter(|f| f.strip_prefix(root).is_ok_and(|rel| rel.ends_with(path)))
                .collect();
            if files.is_empty() {
                missing.push(format!("{doc}: `{quoted}`: no such file"));
                continue;
            }
            let Some(names) = names else { continue };
            let segments: Vec<&str> = names.split("::").collect();
            let found = files.iter().any(|f| {
                let text = std::fs::read_to_string(f).unwrap_or_default();
                let (last, owners) = segments.split_last().expect("a name");
                defines(&text, last) && owners.iter().all(|o| text.contains(o))
            });
            if !found {
                missing.push(format!("{doc}: `{quoted}`: the file defines no such name"));
            }
        }
    }
    assert!(missing.is_empty(), "{missing:#?}");
}

/// The Docker files run the releases `./dev` installs on a machine without Docker, so what a
/// developer tries and what Docker users run stay one thing.
#[test]
fn docker_compose_runs_the_releases_dev_installs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dev = std::fs::read_to_string(root.join("dev")).unwrap();
    let compose = std::fs::read_to_string(root.join("docker-compose.yml")).unwrap();
    let release = |name: &str| {
        dev.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .and_then(|v| v.split_whitespace().next())
            .unwrap_or_else(|| panic!("./dev sets {name}"))
            .to_string()
    };
    let nats = release("NATS_SERVER_RELEASE");
    let postgres_major = release("POSTGRES_RELEASE")
        .split('.')
        .next()
        .unwrap()
        .to_string();
    let images: Vec<&str> = compose
        .lines()
        .filter_map(|l| l.trim().strip_prefix("image: "))
        .collect();
    let nats_images: Vec<_> = images.iter().filter(|i| i.starts_with("nats:")).collect();
    assert!(!nats_images.is_empty(), "docker-compose.yml runs nats");
    for image in nats_images {
        assert_eq!(*image, format!("nats:{nats}"), "docker-compose.yml's nats");
    }
    assert!(
        images.contains(&format!("postgres:{postgres_major}").as_str()),
        "docker-compose.yml runs postgres:{postgres_major}: {images:?}"
    );
}
