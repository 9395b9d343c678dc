//! git's configuration, read from its files the way git reads them, for
//! the few keys hamctl needs (who is releasing), so that a command costs no
//! `git config` process.
//!
//! The files, lowest precedence first: the system file (`$GIT_CONFIG_SYSTEM`,
//! else `etc/gitconfig` under the prefix of the `git` on `PATH`, `/etc` for
//! `/usr`, as git's build lays it out; none with `$GIT_CONFIG_NOSYSTEM`), the
//! global files (`$GIT_CONFIG_GLOBAL`, else `$XDG_CONFIG_HOME/git/config`
//! then `~/.gitconfig`), the configuration of the repository the current
//! folder is in (or `$GIT_DIR`'s), and the variables `GIT_CONFIG_COUNT`,
//! `GIT_CONFIG_KEY_<n>`, `GIT_CONFIG_VALUE_<n>`. The last value of a key wins.
//!
//! Whatever this reader does not follow makes it ask git itself, once, for
//! every key it wants: `include` and `includeIf` sections, a worktree's own
//! configuration, `$GIT_CONFIG_PARAMETERS` (`git -c`), a repository owned by
//! another user (git ignores it), a file it cannot parse, and a system file
//! that sets a key asked for (git alone knows which system file it reads).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The values of the keys asked for, as git would resolve them.
#[derive(Debug, Default)]
pub(crate) struct GitConfig {
    /// `(key, value)` in the order read; keys lowercased.
    values: Vec<(String, String)>,
}

impl GitConfig {
    /// The value git would use for `key` (`section.name`), if any.
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        let key = key.to_ascii_lowercase();
        self.values
            .iter()
            .rev()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Reads `keys` (`section.name`, no subsections) from git's files, with
    /// `env` for the environment and `cwd` for the current folder; asks git
    /// once when the files hold something this reader does not follow.
    pub(crate) fn load(keys: &[&str], env: &dyn Fn(&str) -> Option<String>, cwd: &Path) -> Self {
        match read_files(keys, env, cwd) {
            Some(config) => config,
            None => ask_git(keys).unwrap_or_default(),
        }
    }
}

/// The reason to ask git instead, or the values.
fn read_files(
    keys: &[&str],
    env: &dyn Fn(&str) -> Option<String>,
    cwd: &Path,
) -> Option<GitConfig> {
    let wanted: Vec<String> = keys.iter().map(|k| k.to_ascii_lowercase()).collect();
    if env("GIT_CONFIG_PARAMETERS").is_some_and(|v| !v.is_empty()) {
        return None;
    }
    let mut config = GitConfig::default();
    if !env("GIT_CONFIG_NOSYSTEM").is_some_and(|v| is_true(&v)) {
        for file in system_files(env) {
            let entries = parse_file(&file)?;
            if follows_elsewhere(&entries) || entries.iter().any(|(k, _)| wanted.contains(k)) {
                return None;
            }
        }
    }
    let mut files = global_files(env);
    if let Some(local) = repository_config(env, cwd)? {
        files.push(local);
    }
    for file in files {
        let entries = parse_file(&file)?;
        if follows_elsewhere(&entries) {
            return None;
        }
        config
            .values
            .extend(entries.into_iter().filter(|(k, _)| wanted.contains(k)));
    }
    let count = env("GIT_CONFIG_COUNT").and_then(|c| c.trim().parse::<usize>().ok());
    for n in 0..count.unwrap_or(0) {
        let key = env(&format!("GIT_CONFIG_KEY_{n}"))?.to_ascii_lowercase();
        let value = env(&format!("GIT_CONFIG_VALUE_{n}")).unwrap_or_default();
        if wanted.contains(&key) {
            config.values.push((key, value));
        }
    }
    Some(config)
}

/// Whether a file sends git to other files (which this reader does not do).
fn follows_elsewhere(entries: &[(String, String)]) -> bool {
    entries
        .iter()
        .any(|(k, _)| k.starts_with("include.") || k.starts_with("includeif."))
}

/// git's boolean spelling of true.
fn is_true(value: &str) -> bool {
    matches!(
        value.trim().to_ascii_lowercase().as_str(),
        "1" | "true" | "yes" | "on"
    )
}

/// The system file: `$GIT_CONFIG_SYSTEM`, else the candidates git's build
/// uses (`/etc/gitconfig`, and `<prefix>/etc/gitconfig` for the `git` on
/// `PATH`), those that exist.
fn system_files(env: &dyn Fn(&str) -> Option<String>) -> Vec<PathBuf> {
    if let Some(file) = env("GIT_CONFIG_SYSTEM") {
        return vec![PathBuf::from(file)];
    }
    let mut candidates = vec![PathBuf::from("/etc/gitconfig")];
    let on_path = env("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("git"))
            .find(|git| git.is_file())
    });
    if let Some(prefix) = on_path.as_deref().and_then(|git| git.parent()?.parent()) {
        if prefix != Path::new("/usr") {
            candidates.push(prefix.join("etc/gitconfig"));
        }
    }
    candidates.into_iter().filter(|f| f.is_file()).collect()
}

/// The global files, lowest precedence first.
fn global_files(env: &dyn Fn(&str) -> Option<String>) -> Vec<PathBuf> {
    if let Some(file) = env("GIT_CONFIG_GLOBAL") {
        return vec![PathBuf::from(file)];
    }
    let home = env("HOME").filter(|h| !h.is_empty()).map(PathBuf::from);
    let xdg = env("XDG_CONFIG_HOME")
        .filter(|x| !x.is_empty())
        .map(PathBuf::from)
        .or_else(|| home.as_ref().map(|h| h.join(".config")))
        .map(|x| x.join("git/config"));
    xdg.into_iter()
        .chain(home.map(|h| h.join(".gitconfig")))
        .collect()
}

/// The repository configuration git would read from `cwd`: `Some(None)`
/// outside a repository, `None` when git should be asked (a worktree with
/// its own configuration, a repository another user owns).
fn repository_config(env: &dyn Fn(&str) -> Option<String>, cwd: &Path) -> Option<Option<PathBuf>> {
    let git_dir = match env("GIT_DIR") {
        Some(dir) => Some(cwd.join(dir)),
        None => discover(cwd)?,
    };
    let Some(git_dir) = git_dir else {
        return Some(None);
    };
    let common = match std::fs::read_to_string(git_dir.join("commondir")) {
        Ok(relative) => git_dir.join(relative.trim()),
        Err(_) => git_dir.clone(),
    };
    let config = common.join("config");
    if !owned_by_me(&common) {
        return None;
    }
    let entries = parse_file(&config)?;
    let worktree_config = entries
        .iter()
        .any(|(k, v)| k == "extensions.worktreeconfig" && is_true(v));
    if worktree_config {
        return None;
    }
    Some(Some(config))
}

/// The git folder of the repository `cwd` is in, as git finds it: a `.git`
/// folder or `gitdir:` file in `cwd` or a parent, or `cwd` or a parent being
/// a bare repository. `None` when a `.git` file cannot be read.
fn discover(cwd: &Path) -> Option<Option<PathBuf>> {
    for dir in cwd.ancestors() {
        let dot_git = dir.join(".git");
        if dot_git.is_dir() {
            return Some(Some(dot_git));
        }
        if dot_git.is_file() {
            let text = std::fs::read_to_string(&dot_git).ok()?;
            let target = text.trim().strip_prefix("gitdir:")?.trim();
            return Some(Some(dir.join(target)));
        }
        let bare =
            dir.join("HEAD").is_file() && dir.join("objects").is_dir() && dir.join("refs").is_dir();
        if bare {
            return Some(Some(dir.to_path_buf()));
        }
    }
    Some(None)
}

/// Whether the current user owns `dir` (git ignores a repository someone
/// else owns unless `safe.directory` says otherwise: git decides that).
fn owned_by_me(dir: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: getuid has no preconditions and cannot fail.
    let me = unsafe { libc::getuid() };
    std::fs::metadata(dir).is_ok_and(|m| m.uid() == me)
}

/// The `(key, value)` entries of a config file, keys lowercased as
/// `section.name` (`section.subsection.name` with the subsection as
/// written). A missing file has none; `None` for a file git would refuse.
fn parse_file(path: &Path) -> Option<Vec<(String, String)>> {
    match std::fs::read(path) {
        Ok(bytes) => parse(&String::from_utf8_lossy(&bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(Vec::new()),
        Err(_) => None,
    }
}

/// git's config syntax: `[section]`, `[section "subsection"]`, `name =
/// value` or a bare `name` (true), `#` and `;` comments, double quotes,
/// the escapes `\\ \" \n \t \b`, and a backslash before a line end that
/// continues the value. `None` where git would report a bad line.
pub(crate) fn parse(text: &str) -> Option<Vec<(String, String)>> {
    let text = text.replace("\r\n", "\n");
    let mut chars = text.chars().peekable();
    let mut section = String::new();
    let mut entries = Vec::new();
    // A UTF-8 byte order mark is skipped, as git does.
    if chars.peek() == Some(&'\u{feff}') {
        chars.next();
    }
    loop {
        let Some(c) = chars.next() else {
            return Some(entries);
        };
        match c {
            '\n' => {}
            c if c.is_whitespace() => {}
            '#' | ';' => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            '[' => section = parse_section(&mut chars)?,
            c if c.is_ascii_alphabetic() => {
                if section.is_empty() {
                    return None;
                }
                let mut name = String::from(c.to_ascii_lowercase());
                while let Some(&c) = chars.peek() {
                    if c.is_ascii_alphanumeric() || c == '-' {
                        name.push(c.to_ascii_lowercase());
                        chars.next();
                    } else {
                        break;
                    }
                }
                while chars.peek().is_some_and(|c| *c == ' ' || *c == '\t') {
                    chars.next();
                }
                let value = match chars.peek() {
                    None | Some('\n') => "true".to_string(),
                    Some('#') | Some(';') => {
                        for c in chars.by_ref() {
                            if c == '\n' {
                                break;
                            }
                        }
                        "true".to_string()
                    }
                    Some('=') => {
                        chars.next();
                        parse_value(&mut chars)?
                    }
                    Some(_) => return None,
                };
                entries.push((format!("{section}.{name}"), value));
            }
            _ => return None,
        }
    }
}

/// After `[`: the section (lowercased), with its subsection when there is
/// one (`[a "b"]` as written, `[a.b]` lowercased, as git does).
fn parse_section(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Option<String> {
    let mut name = String::new();
    loop {
        match chars.next()? {
            ']' => return (!name.is_empty()).then_some(name),
            c if c.is_ascii_alphanumeric() || c == '-' || c == '.' => {
                name.push(c.to_ascii_lowercase())
            }
            c if c.is_whitespace() && c != '\n' => break,
            _ => return None,
        }
    }
    while chars
        .peek()
        .is_some_and(|c| c.is_whitespace() && *c != '\n')
    {
        chars.next();
    }
    if chars.next()? != '"' {
        return None;
    }
    let mut subsection = String::new();
    loop {
        match chars.next()? {
            '"' => break,
            '\n' => return None,
            '\\' => match chars.next()? {
                '\n' => return None,
                c => subsection.push(c),
            },
            c => subsection.push(c),
        }
    }
    (chars.next()? == ']').then(|| format!("{name}.{subsection}"))
}

/// After `=`: the value up to the end of the line, as git's `parse_value`
/// reads it (leading and trailing blanks dropped, blanks inside kept).
fn parse_value(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Option<String> {
    let mut value = String::new();
    let mut quoted = false;
    let mut comment = false;
    // Length of the value before a run of trailing blanks.
    let mut trim_at: Option<usize> = None;
    loop {
        let c = match chars.next() {
            None | Some('\n') => {
                if quoted {
                    return None;
                }
                if let Some(at) = trim_at {
                    value.truncate(at);
                }
                return Some(value);
            }
            Some(c) => c,
        };
        if comment {
            continue;
        }
        if c.is_whitespace() && !quoted {
            if trim_at.is_none() {
                trim_at = Some(value.len());
            }
            if !value.is_empty() {
                value.push(c);
            }
            continue;
        }
        if !quoted && (c == ';' || c == '#') {
            comment = true;
            continue;
        }
        trim_at = None;
        match c {
            '\\' => match chars.next()? {
                '\n' => {}
                't' => value.push('\t'),
                'b' => value.push('\u{8}'),
                'n' => value.push('\n'),
                '\\' => value.push('\\'),
                '"' => value.push('"'),
                _ => return None,
            },
            '"' => quoted = !quoted,
            c => value.push(c),
        }
    }
}

/// `git config --get-regexp` for exactly `keys`, run once: git resolves
/// every file and rule itself. `None` when git is missing or fails.
fn ask_git(keys: &[&str]) -> Option<GitConfig> {
    let pattern = format!(
        "^({})$",
        keys.iter()
            .map(|k| k.replace('.', "\\."))
            .collect::<Vec<_>>()
            .join("|")
    );
    let output = Command::new("git")
        .args(["config", "--null", "--get-regexp", &pattern])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    // Exit status 1: no key set.
    if !output.status.success() && output.status.code() != Some(1) {
        return None;
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let values = text
        .split('\0')
        .filter(|entry| !entry.is_empty())
        .map(|entry| match entry.split_once('\n') {
            Some((key, value)) => (key.to_ascii_lowercase(), value.to_string()),
            None => (entry.to_ascii_lowercase(), "true".to_string()),
        })
        .collect();
    Some(GitConfig { values })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn entries(text: &str) -> Vec<(String, String)> {
        parse(text).expect("parses")
    }

    #[test]
    fn reads_values_the_way_git_does() {
        let text = "# comment\n[user]\n\tname = Jane  Doe   ; trailing comment\n\
                    email=\"jane@example.com\"\n[core]\n\tbare\n[Committer]\n  NAME = \" padded \" \n\
                    [remote \"Origin\"]\n\turl = x\n[a.B]\n\tk = line\\\n continued\n";
        assert_eq!(
            entries(text),
            [
                ("user.name", "Jane  Doe"),
                ("user.email", "jane@example.com"),
                ("core.bare", "true"),
                ("committer.name", " padded "),
                ("remote.Origin.url", "x"),
                ("a.b.k", "line continued"),
            ]
            .map(|(k, v)| (k.to_string(), v.to_string()))
        );
    }

    #[test]
    fn bad_lines_are_refused() {
        assert!(parse("name = outside a section\n").is_none());
        assert!(parse("[user\nname = x\n").is_none());
        assert!(parse("[user]\nname = \"unterminated\n").is_none());
        assert!(parse("[user]\nname = bad \\q escape\n").is_none());
    }

    /// The parser agrees with git on a file full of corner cases.
    #[test]
    fn agrees_with_git_config() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config");
        let text = "[user]\n name = \"Jane \\\"JD\\\" Doe\" # comment\n\temail = a@b.c ;x\n\
                    [user]\n name = Later Name\n[committer]\n email = \" spaced@x \"\n\
                    [http \"https://h\"]\n\textraHeader = x\n";
        std::fs::write(&file, text).unwrap();
        let ours = entries(text);
        for key in ["user.name", "user.email", "committer.email"] {
            let out = Command::new("git")
                .args(["config", "--file"])
                .arg(&file)
                .args(["--get", key])
                .env("GIT_CONFIG_NOSYSTEM", "1")
                .env("GIT_CONFIG_GLOBAL", "/dev/null")
                .output()
                .expect("git runs");
            let git = String::from_utf8(out.stdout).unwrap();
            let mine = ours.iter().rev().find(|(k, _)| k == key).unwrap();
            assert_eq!(format!("{}\n", mine.1), git, "{key}");
        }
    }

    fn env_of(pairs: &[(&str, String)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn repository_over_global_over_system() {
        let dir = tempfile::tempdir().unwrap();
        let system = dir.path().join("system");
        std::fs::write(&system, "[core]\n\teditor = vi\n").unwrap();
        let global = dir.path().join("global");
        std::fs::write(
            &global,
            "[user]\n\tname = Global Name\n\temail = global@example.com\n",
        )
        .unwrap();
        let repo = dir.path().join("work");
        std::fs::create_dir_all(repo.join(".git")).unwrap();
        std::fs::create_dir_all(repo.join("sub/folder")).unwrap();
        std::fs::write(
            repo.join(".git/config"),
            "[user]\n\temail = repo@example.com\n",
        )
        .unwrap();
        let env = env_of(&[
            ("GIT_CONFIG_SYSTEM", system.display().to_string()),
            ("GIT_CONFIG_GLOBAL", global.display().to_string()),
        ]);
        let keys = ["user.name", "user.email"];
        let config = read_files(&keys, &env, &repo.join("sub/folder")).expect("read directly");
        assert_eq!(config.get("user.name"), Some("Global Name"));
        assert_eq!(config.get("user.email"), Some("repo@example.com"));
        // Outside the repository, the global value.
        let outside = read_files(&keys, &env, dir.path()).expect("read directly");
        assert_eq!(outside.get("user.email"), Some("global@example.com"));
        // The environment's entries come last.
        let env = env_of(&[
            ("GIT_CONFIG_SYSTEM", system.display().to_string()),
            ("GIT_CONFIG_GLOBAL", global.display().to_string()),
            ("GIT_CONFIG_COUNT", "1".to_string()),
            ("GIT_CONFIG_KEY_0", "User.Email".to_string()),
            ("GIT_CONFIG_VALUE_0", "env@example.com".to_string()),
        ]);
        let config = read_files(&keys, &env, &repo).expect("read directly");
        assert_eq!(config.get("user.email"), Some("env@example.com"));
    }

    #[test]
    fn what_it_does_not_follow_goes_to_git() {
        let dir = tempfile::tempdir().unwrap();
        let global = dir.path().join("global");
        std::fs::write(&global, "[include]\n\tpath = other\n").unwrap();
        let env = env_of(&[
            ("GIT_CONFIG_NOSYSTEM", "1".to_string()),
            ("GIT_CONFIG_GLOBAL", global.display().to_string()),
        ]);
        assert!(read_files(&["user.name"], &env, dir.path()).is_none());
        let system = dir.path().join("system");
        std::fs::write(&system, "[user]\n\tname = From System\n").unwrap();
        std::fs::write(&global, "[user]\n\temail = a@b.c\n").unwrap();
        let env = env_of(&[
            ("GIT_CONFIG_SYSTEM", system.display().to_string()),
            ("GIT_CONFIG_GLOBAL", global.display().to_string()),
        ]);
        assert!(
            read_files(&["user.name"], &env, dir.path()).is_none(),
            "a system file setting a wanted key"
        );
        let env = env_of(&[
            ("GIT_CONFIG_NOSYSTEM", "1".to_string()),
            ("GIT_CONFIG_PARAMETERS", "'user.name'='x'".to_string()),
        ]);
        assert!(read_files(&["user.name"], &env, dir.path()).is_none());
    }
}
