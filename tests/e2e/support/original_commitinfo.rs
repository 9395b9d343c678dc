//! The original release manager's reader of release commits, ported
//! line by line from its `internal/commitinfo` (`conventional.go`,
//! `commitinfo.go`, `intent.go`, `person.go`; the regular expressions are
//! its own, RE2 syntax, which the `regex` crate reads the same way), so
//! tests can check that it reads what this server writes: the same
//! releaser, intent, service, environment and artifact.

use regex::Regex;

/// `ConventionalCommitInfo`: a message's first line, the text after it,
/// and the `Key: value` lines that end it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConventionalCommitInfo {
    pub message: String,
    pub description: String,
    pub fields: Vec<(String, String)>,
}

impl ConventionalCommitInfo {
    /// `Field(name)`: the first field called `name`, else "".
    pub fn field(&self, name: &str) -> String {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }

    fn has_field(&self, name: &str) -> bool {
        self.fields.iter().any(|(k, _)| k == name)
    }
}

/// `ParseConventionalCommit`.
pub fn parse_conventional_commit(message: &str) -> Result<ConventionalCommitInfo, String> {
    let regex = Regex::new(
        r"(?s)^((?P<Message>[^\n]*)(?P<Description>.*?)((?P<Fields>(\n[a-zA-Z\-]+:[^\n]*)(\n[a-zA-Z\-]+:[^\n]*)*))?)?\n*$",
    )
    .expect("the original's regex");
    let captures = regex
        .captures(message)
        .ok_or("message does not match expected conventional commit structure")?;
    let group = |name: &str| {
        captures
            .name(name)
            .map(|m| m.as_str().trim_matches('\n').to_string())
            .unwrap_or_default()
    };
    let mut fields = Vec::new();
    let fields_text = group("Fields");
    if !fields_text.is_empty() {
        for line in fields_text.split('\n') {
            let Some((key, value)) = line.split_once(':') else {
                return Err(format!("field line '{line}' in commit could not be parsed"));
            };
            fields.push((key.to_string(), value.trim_matches(' ').to_string()));
        }
    }
    Ok(ConventionalCommitInfo {
        message: group("Message"),
        description: group("Description"),
        fields,
    })
}

/// `PersonInfo`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PersonInfo {
    pub name: String,
    pub email: String,
}

/// `ParsePerson`: `Name <email>`.
pub fn parse_person(text: &str) -> Option<PersonInfo> {
    let regex = Regex::new(r"^(?P<Name>.*) <(?P<Email>.*)>$").expect("the original's regex");
    let captures = regex.captures(text)?;
    Some(PersonInfo {
        name: captures["Name"].to_string(),
        email: captures["Email"].to_string(),
    })
}

/// `intent.Intent`: its type and the detail each type carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Intent {
    ReleaseArtifact,
    ReleaseBranch { branch: String },
    Promote { from_environment: String },
    Rollback { previous_artifact_id: String },
    AutoRelease,
}

/// `CommitInfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitInfo {
    pub artifact_id: String,
    pub artifact_created_by: PersonInfo,
    pub released_by: PersonInfo,
    pub service: String,
    pub environment: String,
    pub intent: Intent,
}

/// `ParseCommitInfo`: the release a commit message describes, or why it
/// is none ("no match").
pub fn parse_commit_info(commit_message: &str) -> Result<CommitInfo, String> {
    let conventional = parse_conventional_commit(commit_message)?;
    let title = Regex::new(
        r"^\[(?P<Environment>[^/]+)/(?P<Service>.*)\] (?P<Type>[a-z ]+)( (?P<PreviousArtifactID>[^ ]+) to)? (?P<ArtifactID>[^ ]+)( by (?P<ReleaseByEmail>.*))?$",
    )
    .expect("the original's regex");
    let matches = title.captures(&conventional.message);
    if matches.is_none() && !conventional.has_field("Release-intent") {
        return Err(format!(
            "no match: commit message '{}' do not have a Release-intent field and did not match expected message structure",
            conventional.message
        ));
    }
    let group = |name: &str| {
        matches
            .as_ref()
            .and_then(|m| m.name(name))
            .map(|m| m.as_str().to_string())
            .unwrap_or_default()
    };
    if matches.is_some() && group("Type") == "artifact" {
        return Err("no match: commit type 'artifact' is not considered a match".into());
    }
    let artifact_created_by =
        parse_person(&conventional.field("Artifact-created-by")).unwrap_or_default();
    let mut released_by =
        parse_person(&conventional.field("Artifact-released-by")).unwrap_or_default();
    let intent = match conventional.field("Release-intent").as_str() {
        "ReleaseBranch" => Intent::ReleaseBranch {
            branch: conventional.field("Release-of-branch"),
        },
        "Promote" => Intent::Promote {
            from_environment: conventional.field("Promoted-from-environment"),
        },
        "Rollback" => Intent::Rollback {
            previous_artifact_id: conventional.field("Rollback-of-artifact-id"),
        },
        "AutoRelease" => Intent::AutoRelease,
        _ if matches.is_some() && group("Type") == "rollback" => Intent::Rollback {
            previous_artifact_id: group("PreviousArtifactID"),
        },
        _ => Intent::ReleaseArtifact,
    };
    let or_title = |field: &str, name: &str| {
        let value = conventional.field(field);
        if matches.is_some() && value.is_empty() {
            group(name)
        } else {
            value
        }
    };
    let service = or_title("Service", "Service");
    let environment = or_title("Environment", "Environment");
    let artifact_id = or_title("Artifact-ID", "ArtifactID");
    if matches.is_some() && released_by.email.is_empty() {
        released_by = PersonInfo {
            name: String::new(),
            email: group("ReleaseByEmail"),
        };
    }
    Ok(CommitInfo {
        artifact_id,
        artifact_created_by,
        released_by,
        service,
        environment,
        intent,
    })
}
