//! The README's Quick start and its client are the examples `cargo run --example quickstart`
//! and `quickstart_client` run, word for word: a newcomer who pastes the README runs what
//! the project tests and builds.

use std::path::Path;

fn read(path: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The code of the first ```rust block after `heading` in the README.
fn readme_block(heading: &str) -> String {
    let readme = read("README.md");
    let at = readme
        .find(heading)
        .unwrap_or_else(|| panic!("README.md has no {heading:?}"));
    let open = "```rust,no_run\n";
    let start = readme[at..]
        .find(open)
        .expect("a rust block after the heading")
        + at
        + open.len();
    let end = readme[start..].find("```\n").expect("the block's end") + start;
    readme[start..end].to_owned()
}

/// An example's code, from its first `use` line to the end (its doc comment says what it is).
fn example_body(path: &str) -> String {
    let source = read(path);
    let start = source.find("\nuse ").expect("a use line") + 1;
    source[start..].to_owned()
}

#[test]
fn the_readme_quick_start_is_the_quickstart_example() {
    assert_eq!(
        readme_block("## Quick start"),
        example_body("examples/quickstart.rs"),
        "README.md's Quick start and examples/quickstart.rs differ: change them together"
    );
}

#[test]
fn the_readme_client_is_the_quickstart_client_example() {
    assert_eq!(
        readme_block("### Talking to the quickstart"),
        example_body("examples/quickstart_client.rs"),
        "README.md's client and examples/quickstart_client.rs differ: change them together"
    );
}
