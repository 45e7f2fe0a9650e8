//! The shape of the tree (issue 15's acceptance), checked on the sources themselves:
//!
//! * no two modules of `src/` import each other (`crate::`/`super::` paths outside
//!   comments, strings and `#[cfg(test)]` items; a module and its ancestors excepted);
//! * no function in `src/` is longer than 100 lines (raw lines from its `fn` line to its
//!   closing brace, tests in `src/` included);
//! * `explain.rs` has at most 500 lines, `reading.rs` at most 700;
//! * the names of the removed re-parsing helpers appear nowhere in `src/`, `tests/` or
//!   `benches/` (this file builds them from pieces, so it does not hold them itself).
//!
//! One test reports every violation of every rule at once, so a branch learns all it has
//! left to do from one run. The scanner is a small Rust lexer (comments, strings, char
//! literals, raw strings), not a parser; the unit tests below show it finds what it must.
// A failing check is the report: tests may index and panic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::too_many_lines
)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const MAX_FN_LINES: usize = 100;
const FILE_LIMITS: [(&str, usize); 2] = [("src/explain.rs", 500), ("src/reading.rs", 700)];

#[test]
fn the_tree_keeps_its_shape() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let sources = read_sources(&root.join("src"));
    let mut problems = Vec::new();
    problems.extend(module_cycles(&sources));
    problems.extend(long_functions(&sources, MAX_FN_LINES));
    problems.extend(long_files(root));
    problems.extend(removed_words(root));
    problems.extend(undocumented_modules(root, &sources));
    assert!(
        problems.is_empty(),
        "{} structure violation(s):\n  {}",
        problems.len(),
        problems.join("\n  ")
    );
}

/// Every module file of `src/` (test-only files aside) has its line in README's layout
/// table, and the table names no file that is gone.
fn undocumented_modules(root: &Path, sources: &[Source]) -> Vec<String> {
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let listed: BTreeSet<&str> = readme
        .lines()
        .filter_map(|l| l.strip_prefix("| `src/")?.split('`').next())
        .filter(|p| p.ends_with(".rs"))
        .collect();
    let is_test = |rel: &str| rel.ends_with("/tests.rs") || rel.contains("/tests/");
    let files: BTreeSet<&str> = sources
        .iter()
        .filter_map(|s| s.rel.strip_prefix("src/"))
        .filter(|rel| !is_test(rel))
        .collect();
    let missing = files
        .difference(&listed)
        .map(|f| format!("README layout lacks src/{f}"));
    let gone = listed
        .difference(&files)
        .map(|f| format!("README layout names src/{f}, which is gone"));
    missing.chain(gone).collect()
}

// ---- sources --------------------------------------------------------------------------------

/// One file of `src/`: its module path (`wire::apl`; empty for the crate root), its text,
/// the text with comments and literals blanked, and that again without `#[cfg(test)]` items.
struct Source {
    rel: String,
    module: Vec<String>,
    code: String,
    non_test: String,
    /// Declared `#[cfg(test)] mod x;`: the children of this file that are test-only.
    test_children: Vec<String>,
}

fn read_sources(src: &Path) -> Vec<Source> {
    let mut files = Vec::new();
    collect_files(src, &mut files);
    files.retain(|p| p.extension().is_some_and(|e| e == "rs"));
    files.sort();
    let root = src.parent().unwrap_or(src);
    files
        .iter()
        .map(|p| {
            let text = std::fs::read_to_string(p).unwrap();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            source(&rel, module_of(p.strip_prefix(src).unwrap()), &text)
        })
        .collect()
}

fn source(rel: &str, module: Vec<String>, text: &str) -> Source {
    let code = blank_comments_and_literals(text);
    let (non_test, test_children) = without_test_items(&code);
    Source {
        rel: rel.to_owned(),
        module,
        code,
        non_test,
        test_children,
    }
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_files(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// `wire/apl/mod.rs` → `wire::apl`, `cli/listen.rs` → `cli::listen`, `lib.rs` → root.
fn module_of(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .with_extension("")
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

// ---- lexing ---------------------------------------------------------------------------------

/// The text with every comment, string and char literal replaced by spaces (newlines kept,
/// so line numbers and braces outside literals stay where they were).
fn blank_comments_and_literals(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let end = literal_end(&chars, i);
        if end > i {
            out.extend(
                chars[i..end]
                    .iter()
                    .map(|&c| if c == '\n' { '\n' } else { ' ' }),
            );
            i = end;
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

/// Where a comment or literal starting at `i` ends (`i` itself when none starts there).
fn literal_end(c: &[char], i: usize) -> usize {
    let at = |k: usize| c.get(k).copied().unwrap_or('\0');
    let ident_before = i > 0 && (at(i - 1).is_alphanumeric() || at(i - 1) == '_');
    match (at(i), at(i + 1)) {
        ('/', '/') => (i..c.len()).find(|&k| at(k) == '\n').unwrap_or(c.len()),
        ('/', '*') => block_comment_end(c, i),
        ('"', _) => string_end(c, i + 1),
        ('\'', _) => char_end(c, i),
        ('r', '"' | '#') if !ident_before => raw_string_end(c, i + 1).unwrap_or(i),
        ('b', 'r') if !ident_before => raw_string_end(c, i + 2).unwrap_or(i),
        _ => i,
    }
}

fn block_comment_end(c: &[char], start: usize) -> usize {
    let mut depth = 0;
    let mut k = start;
    while k + 1 < c.len() {
        match (c[k], c[k + 1]) {
            ('/', '*') => {
                depth += 1;
                k += 2;
            }
            ('*', '/') => {
                depth -= 1;
                k += 2;
                if depth == 0 {
                    return k;
                }
            }
            _ => k += 1,
        }
    }
    c.len()
}

/// End of a string whose opening quote is just before `k`.
fn string_end(c: &[char], mut k: usize) -> usize {
    while k < c.len() {
        match c[k] {
            '\\' => k += 2,
            '"' => return k + 1,
            _ => k += 1,
        }
    }
    c.len()
}

/// A char literal (`'x'`, `'\n'`, `'\u{1F600}'`) or, left alone, a lifetime (`'a`).
fn char_end(c: &[char], i: usize) -> usize {
    match (c.get(i + 1), c.get(i + 2)) {
        (Some('\\'), _) => (i + 2..c.len())
            .find(|&k| c[k] == '\'')
            .map_or(c.len(), |k| k + 1),
        (Some(_), Some('\'')) => i + 3,
        _ => i,
    }
}

/// `r#"…"#` with `k` at the first `#` or quote; `None` when it is no raw string.
fn raw_string_end(c: &[char], k: usize) -> Option<usize> {
    let hashes = c[k..].iter().take_while(|&&ch| ch == '#').count();
    if c.get(k + hashes) != Some(&'"') {
        return None;
    }
    let body = k + hashes + 1;
    let close: Vec<char> = std::iter::once('"')
        .chain(std::iter::repeat('#').take(hashes))
        .collect();
    (body..c.len())
        .find(|&e| c[e..].starts_with(&close))
        .map(|e| e + close.len())
        .or(Some(c.len()))
}

/// Blanks every item under `#[cfg(test)]` (or `#[cfg(all(test, …))]`); also returns the
/// names of test-only child modules declared as `mod name;`.
fn without_test_items(code: &str) -> (String, Vec<String>) {
    let markers: [Vec<char>; 2] = ["#[cfg(test)]", "#[cfg(all(test,"].map(|m| m.chars().collect());
    let mut out: Vec<char> = code.chars().collect();
    let mut children = Vec::new();
    let mut k = 0;
    while k < out.len() {
        let Some(marker) = markers.iter().find(|m| out[k..].starts_with(m)) else {
            k += 1;
            continue;
        };
        let end = item_end(&out, k + marker.len());
        let item: String = out[k..end].iter().collect();
        if let Some(name) = declared_mod(&item) {
            children.push(name);
        }
        for ch in &mut out[k..end] {
            if *ch != '\n' {
                *ch = ' ';
            }
        }
        k = end;
    }
    (out.into_iter().collect(), children)
}

/// The end of the item after an attribute: its first `;` outside brackets, or its body.
fn item_end(c: &[char], from: usize) -> usize {
    let mut depth = 0usize;
    for (k, &ch) in c.iter().enumerate().skip(from) {
        match ch {
            '[' | '(' => depth += 1,
            ']' | ')' => depth = depth.saturating_sub(1),
            ';' if depth == 0 => return k + 1,
            '{' if depth == 0 => return matching_brace(c, k).map_or(c.len(), |e| e + 1),
            _ => {}
        }
    }
    c.len()
}

fn matching_brace(c: &[char], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (k, &ch) in c.iter().enumerate().skip(open) {
        match ch {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(k);
                }
            }
            _ => {}
        }
    }
    None
}

/// `mod name;` → `name`.
fn declared_mod(item: &str) -> Option<String> {
    let words = words(item);
    let at = words.iter().position(|w| w == "mod")?;
    let name = words.get(at + 1)?;
    item.trim_end().ends_with(';').then(|| name.clone())
}

/// Identifiers and single punctuation characters (`::` kept whole).
fn words(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = code.chars().peekable();
    while let Some(ch) = chars.next() {
        if ch.is_alphanumeric() || ch == '_' {
            let mut w = ch.to_string();
            while let Some(&n) = chars.peek().filter(|n| n.is_alphanumeric() || **n == '_') {
                w.push(n);
                chars.next();
            }
            out.push(w);
        } else if ch == ':' && chars.peek() == Some(&':') {
            chars.next();
            out.push("::".to_owned());
        } else if !ch.is_whitespace() {
            out.push(ch.to_string());
        }
    }
    out
}

// ---- rule (a): no module pair imports each other ---------------------------------------------

/// Every `a imports b` edge of `src/`, with one example path per edge.
fn import_edges(sources: &[Source]) -> BTreeMap<(String, String), String> {
    let modules: BTreeSet<Vec<String>> = sources.iter().map(|s| s.module.clone()).collect();
    let test_only: BTreeSet<Vec<String>> = sources
        .iter()
        .flat_map(|s| {
            s.test_children.iter().map(|c| {
                let mut m = s.module.clone();
                m.push(c.clone());
                m
            })
        })
        .collect();
    let mut edges = BTreeMap::new();
    for s in sources {
        if s.module.is_empty() || test_only.iter().any(|t| s.module.starts_with(t)) {
            continue;
        }
        for path in referenced_paths(s) {
            let Some(target) = longest_module(&modules, &path) else {
                continue;
            };
            if target.starts_with(&s.module) || s.module.starts_with(&target) {
                continue;
            }
            edges
                .entry((s.module.join("::"), target.join("::")))
                .or_insert_with(|| format!("{}: {}", s.rel, path.join("::")));
        }
    }
    edges
}

fn module_cycles(sources: &[Source]) -> Vec<String> {
    let edges = import_edges(sources);
    edges
        .iter()
        .filter(|((a, b), _)| a < b && edges.contains_key(&(b.clone(), a.clone())))
        .map(|((a, b), why)| {
            let back = &edges[&(b.clone(), a.clone())];
            format!("modules {a} and {b} import each other ({why}; {back})")
        })
        .collect()
}

fn longest_module(modules: &BTreeSet<Vec<String>>, path: &[String]) -> Option<Vec<String>> {
    (1..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|p| modules.contains(p))
}

/// Absolute module paths named by `crate::…` and `super::…` in a file's non-test code,
/// use-groups expanded (`crate::{a, b::c}` names `a` and `b::c`).
fn referenced_paths(s: &Source) -> Vec<Vec<String>> {
    let w = words(&s.non_test);
    let mut scopes = ScopeTracker::new(s.module.clone());
    let mut out = Vec::new();
    for k in 0..w.len() {
        scopes.step(&w, k);
        let base = match w[k].as_str() {
            "crate" => Vec::new(),
            "super" if k == 0 || w[k - 1] != "::" => scopes.parent(),
            _ => continue,
        };
        if w.get(k + 1).map(String::as_str) != Some("::") {
            continue;
        }
        let mut trees = Vec::new();
        use_tree(&w, k + 2, base, &mut trees);
        out.extend(trees);
    }
    out
}

/// The module a position of a file is in: the file's module plus the inline `mod x { … }`
/// blocks open there, so `super::` resolves from the right place.
struct ScopeTracker {
    file: Vec<String>,
    open: Vec<(String, usize)>,
    depth: usize,
}

impl ScopeTracker {
    fn new(file: Vec<String>) -> Self {
        ScopeTracker {
            file,
            open: Vec::new(),
            depth: 0,
        }
    }

    fn step(&mut self, w: &[String], k: usize) {
        match w[k].as_str() {
            "{" => {
                self.depth += 1;
                if k >= 2 && w[k - 2] == "mod" {
                    self.open.push((w[k - 1].clone(), self.depth));
                }
            }
            "}" => {
                if self.open.last().is_some_and(|(_, d)| *d == self.depth) {
                    self.open.pop();
                }
                self.depth = self.depth.saturating_sub(1);
            }
            _ => {}
        }
    }

    fn parent(&self) -> Vec<String> {
        let mut here = self.file.clone();
        here.extend(self.open.iter().map(|(n, _)| n.clone()));
        here.pop();
        here
    }
}

/// Expands the use-tree at `w[k..]` under `prefix` (`super::super` climbs further).
fn use_tree(w: &[String], mut k: usize, mut prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
    loop {
        match w.get(k).map(String::as_str) {
            Some("super") => {
                prefix.pop();
            }
            Some("{") => {
                for start in group_items(w, k) {
                    use_tree(w, start, prefix.clone(), out);
                }
                return;
            }
            Some(id) if id.chars().all(|c| c.is_alphanumeric() || c == '_') => {
                if id != "self" {
                    prefix.push(id.to_owned());
                }
            }
            _ => break,
        }
        if w.get(k + 1).map(String::as_str) != Some("::") {
            break;
        }
        k += 2;
    }
    out.push(prefix);
}

/// Start positions of the items of the `{ … }` group opening at `w[open]`.
fn group_items(w: &[String], open: usize) -> Vec<usize> {
    let mut starts = vec![open + 1];
    let mut depth = 0usize;
    for (k, t) in w.iter().enumerate().skip(open) {
        match t.as_str() {
            "{" => depth += 1,
            "}" => {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            "," if depth == 1 => starts.push(k + 1),
            _ => {}
        }
    }
    starts
}

// ---- rule (b): no function over 100 lines -----------------------------------------------------

/// `file:line: fn name has N lines` for every function longer than `limit` raw lines.
fn long_functions(sources: &[Source], limit: usize) -> Vec<String> {
    let mut out = Vec::new();
    for s in sources {
        for (name, line, lines) in function_lengths(&s.code) {
            if lines > limit {
                out.push(format!(
                    "{}:{line}: fn {name} has {lines} lines (limit {limit})",
                    s.rel
                ));
            }
        }
    }
    out
}

/// (name, first line, raw lines) of every function with a body.
fn function_lengths(code: &str) -> Vec<(String, usize, usize)> {
    let chars: Vec<char> = code.chars().collect();
    // line_at[k]: 1-based line of chars[k].
    let line_at: Vec<usize> = chars
        .iter()
        .scan(1, |line, &c| {
            let here = *line;
            *line += usize::from(c == '\n');
            Some(here)
        })
        .collect();
    let line_of = |pos: usize| line_at.get(pos).copied().unwrap_or(0);
    let mut out = Vec::new();
    let mut k = 0;
    while k + 2 < chars.len() {
        let keyword = chars[k..].starts_with(&['f', 'n', ' '])
            && (k == 0 || !(chars[k - 1].is_alphanumeric() || chars[k - 1] == '_'));
        if keyword {
            let name: String = chars[k + 3..]
                .iter()
                .take_while(|c| c.is_alphanumeric() || **c == '_')
                .collect();
            let body = signature_end(&chars, k + 3);
            if let (false, Some(open)) = (name.is_empty(), body) {
                if let Some(close) = matching_brace(&chars, open) {
                    out.push((name, line_of(k), line_of(close) - line_of(k) + 1));
                }
            }
        }
        k += 1;
    }
    out
}

/// The `{` opening a function's body, or `None` for a declaration ending in `;`.
fn signature_end(c: &[char], from: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (k, &ch) in c.iter().enumerate().skip(from) {
        match ch {
            '(' | '[' | '<' => depth += 1,
            ')' | ']' => depth = depth.saturating_sub(1),
            // `->` is no closing angle bracket.
            '>' if k > 0 && c[k - 1] != '-' => depth = depth.saturating_sub(1),
            ';' if depth == 0 => return None,
            '{' if depth == 0 => return Some(k),
            _ => {}
        }
    }
    None
}

// ---- rules (c) and (d) ------------------------------------------------------------------------

fn long_files(root: &Path) -> Vec<String> {
    FILE_LIMITS
        .iter()
        .filter_map(|&(rel, limit)| {
            let text = std::fs::read_to_string(root.join(rel)).ok()?;
            let lines = text.lines().count();
            (lines > limit).then(|| format!("{rel} has {lines} lines (limit {limit})"))
        })
        .collect()
}

/// The helpers that re-parsed a frame's link header, by name (built from pieces).
fn removed_names() -> [String; 3] {
    [
        ["peek", "_meter", "_id"].concat(),
        ["header", "_address"].concat(),
        ["peek", "_identity"].concat(),
    ]
}

fn removed_words(root: &Path) -> Vec<String> {
    let names = removed_names();
    let mut files = Vec::new();
    for dir in ["src", "tests", "benches"] {
        collect_files(&root.join(dir), &mut files);
    }
    files.sort();
    let mut out = Vec::new();
    for path in files {
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let rel = path.strip_prefix(root).unwrap_or(&path).display();
        for (n, line) in text.lines().enumerate() {
            for name in names.iter().filter(|w| line.contains(w.as_str())) {
                out.push(format!("{rel}:{}: mentions {name}", n + 1));
            }
        }
    }
    out
}

// ---- the checker checks ---------------------------------------------------------------------

#[cfg(test)]
mod scanner {
    use super::*;

    fn src(rel: &str, text: &str) -> Source {
        let module = module_of(Path::new(rel));
        source(rel, module, text)
    }

    #[test]
    fn a_pair_importing_each_other_is_found_and_tests_and_comments_are_not() {
        let files = [
            src("a/mod.rs", "pub mod x;\nuse crate::b::Thing;\n"),
            src("a/x.rs", "use super::super::c::{self, d::E};\n"),
            src(
                "b.rs",
                "// crate::a::x is only named here\n/// [`crate::c`]\nconst S: &str = \"crate::a\";\nfn f() { crate::a::run() }\n",
            ),
            src(
                "c/mod.rs",
                "pub mod d;\n#[cfg(test)]\nmod tests { use crate::a::Y; }\n",
            ),
            src("c/d.rs", "use crate::{a::{self}, b};\nuse super::super::b as _;\n"),
        ];
        let cycles = module_cycles(&files);
        assert_eq!(cycles.len(), 1, "{cycles:?}");
        assert!(
            cycles[0].starts_with("modules a and b import each other"),
            "{cycles:?}"
        );
        let edges = import_edges(&files);
        assert!(edges.contains_key(&("a::x".to_owned(), "c".to_owned())));
        assert!(edges.contains_key(&("c::d".to_owned(), "a".to_owned())));
        assert!(!edges.contains_key(&("c".to_owned(), "a".to_owned())));
        // A parent and its child may use each other.
        let family = [
            src("p/mod.rs", "mod q;\nuse q::Z;\nfn g() { self::q::h() }\n"),
            src("p/q.rs", "use super::Y;\nuse crate::p::W;\n"),
        ];
        assert!(module_cycles(&family).is_empty());
    }

    #[test]
    fn inline_modules_move_super_and_test_only_files_are_skipped() {
        let files = [
            src("m.rs", "mod inner {\n    use super::super::n::N;\n}\n"),
            src("n.rs", "use crate::m::M;\n"),
            src("k/mod.rs", "#[cfg(test)]\nmod tests;\n"),
            src("k/tests.rs", "use crate::n::N;\n"),
            src("n2.rs", "use crate::k::K;\n"),
        ];
        // `super::super` from m::inner is the crate root: `n`, so m and n form a pair.
        assert_eq!(module_cycles(&files).len(), 1);
        assert!(!import_edges(&files).contains_key(&("k::tests".to_owned(), "n".to_owned())));
    }

    #[test]
    fn function_lines_are_counted_from_fn_to_its_brace() {
        let body: String = (0..99)
            .map(|i| format!("    let _x{i} = '}}';\n"))
            .collect();
        let text = format!(
            "trait T {{ fn decl(&self) -> u8; }}\n\nfn long() -> Vec<u8> {{\n{body}}}\n\
             fn short<T: Into<u8>>(t: T) -> impl Fn() -> u8 {{\n    let s = \"{{\";\n    || 1\n}}\n"
        );
        let code = blank_comments_and_literals(&text);
        let lengths = function_lengths(&code);
        assert_eq!(
            lengths,
            vec![("long".to_owned(), 3, 101), ("short".to_owned(), 104, 4)]
        );
        let s = src("f.rs", &text);
        let long = long_functions(&[s], 100);
        assert_eq!(long, vec!["f.rs:3: fn long has 101 lines (limit 100)"]);
    }

    #[test]
    fn literals_and_comments_are_blanked_but_lifetimes_stay() {
        let text =
            "fn f<'a>(x: &'a str) { /* a /* nested */ c */ let _ = r#\"}\"#; let _ = b'{'; }";
        let code = blank_comments_and_literals(text);
        assert_eq!(code.chars().count(), text.chars().count());
        assert!(code.contains("<'a>") && code.contains("&'a str"));
        assert_eq!(code.matches('{').count(), 1);
        assert_eq!(code.matches('}').count(), 1);
        assert!(!code.contains("nested"));
    }

    #[test]
    fn the_removed_names_are_found_anywhere_in_the_three_directories() {
        let dir = tempfile::tempdir().unwrap();
        for sub in ["src", "tests/support", "benches"] {
            std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        }
        let [a, b, c] = removed_names();
        std::fs::write(
            dir.path().join("src/x.rs"),
            format!(
                "fn f() {{}}
// {a}
"
            ),
        )
        .unwrap();
        std::fs::write(dir.path().join("tests/support/y.rs"), format!("{b}{c}")).unwrap();
        std::fs::write(dir.path().join("benches/z.txt"), "peek header").unwrap();
        let found = removed_words(dir.path());
        assert_eq!(
            found,
            vec![
                format!("src/x.rs:2: mentions {a}"),
                format!("tests/support/y.rs:1: mentions {b}"),
                format!("tests/support/y.rs:1: mentions {c}"),
            ]
        );
    }
}
