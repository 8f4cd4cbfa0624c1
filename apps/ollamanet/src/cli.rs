//! The command line.

use std::io::BufRead;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use kit::config::Platform;
use tokio::net::TcpListener;

use crate::app::{App, Options, Service};
use crate::config::{self, Overrides};

#[derive(Debug, Parser)]
#[command(name = "ollamanet", version, about = "OllamaNet: governed, multi-user access to local LLMs")]
pub struct Cli {
    /// Configuration file (TOML). Default: $OLLAMANET_CONFIG, else ./ollamanet.toml if present.
    #[arg(long, global = true, env = "OLLAMANET_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the platform: every service in one process, or the ones --only names.
    Serve(ServeArgs),
    /// Show or check the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Manage users directly in the configured database.
    #[command(subcommand)]
    Users(UsersCommand),
    /// Show the gateway's route table.
    #[command(subcommand)]
    Routes(RoutesCommand),
    /// Manage the embedded engine's models.
    Models {
        #[command(subcommand)]
        command: crate::models::ModelsCommand,
        #[command(flatten)]
        common: Common,
    },
    /// Announce an Ollama server (e.g. on a notebook behind a tunnel) to the platform's inference
    /// services over RabbitMQ, with heartbeats listing its models, until stopped.
    Announce(AnnounceArgs),
    /// Check the configuration `serve` would run with for what makes a deployment unsafe; exits
    /// with 1 when anything is.
    Doctor(DoctorArgs),
    /// Read one document for the conversation service, confined (the service runs it; see
    /// `ollamanet_documents::isolated`).
    #[command(name = "extract-document", hide = true)]
    ExtractDocument(ChildArgs),
    /// Render chat templates for the engine, confined (the engine runs it; see
    /// `ollamanet_model_format::worker`).
    #[command(name = "render-templates", hide = true)]
    RenderTemplates(ChildArgs),
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// The services the process would run, as `serve --only` takes them. Default: all.
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<Service>,
    /// The address it would listen on, as `serve --listen`.
    #[arg(long)]
    pub listen: Option<String>,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, Args)]
pub struct ChildArgs {
    /// What the service that starts the child asks of it.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

#[derive(Debug, Args)]
pub struct AnnounceArgs {
    /// The URL inference services reach the server at.
    #[arg(long)]
    pub url: String,
    /// Generations the server runs at once (default: the inference service's node_capacity).
    #[arg(long)]
    pub capacity: Option<usize>,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, Args)]
pub struct Common {
    /// Directory for SQLite databases, models and other local state.
    #[arg(long, global = true)]
    pub data_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Services to run in this process, comma-separated (gateway, auth, admin, explore,
    /// conversation, inference, engine, web). Default: all. The engine runs beside inference or
    /// alone.
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<Service>,
    /// Announce this engine process (--only engine) to inference services over RabbitMQ (at
    /// advertise_url); needs engine.key.
    #[arg(long)]
    pub announce: bool,
    /// Address to listen on (default 127.0.0.1:8080).
    #[arg(long)]
    pub listen: Option<String>,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the effective configuration, secrets redacted.
    Print(Common),
}

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Create a user (the first administrator, typically). The password is read from stdin.
    Create {
        #[arg(long)]
        email: String,
        #[arg(long)]
        username: String,
        /// Read the password from the first line of standard input.
        #[arg(long, required = true)]
        password_stdin: bool,
        /// Give the user the Admin role.
        #[arg(long)]
        admin: bool,
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Debug, Subcommand)]
pub enum RoutesCommand {
    /// Print the route table the gateway would use.
    Print(Common),
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => {
            let overrides = Overrides { listen: args.listen.clone(), data_dir: args.common.data_dir.clone() };
            let mut config = config::load(cli.config.as_deref(), &overrides)?;
            kit::telemetry::init_logging(config.infra.log.format, &config.infra.log.level);
            config.server.validate().map_err(anyhow::Error::msg)?;
            let services = if args.only.is_empty() { Service::ALL.to_vec() } else { args.only };
            let listener =
                TcpListener::bind(&config.listen).await.with_context(|| format!("binding {}", config.listen))?;
            let addr = listener.local_addr()?;
            if config.advertise_url.is_none() && !addr.ip().is_unspecified() {
                config.advertise_url = Some(format!("http://{addr}"));
            }
            for finding in crate::doctor::check(&config, &services) {
                tracing::warn!("{finding}");
            }
            let options = Options { announce_engine: args.announce, ..Options::default() };
            let app = App::build(&config, &services, options).await?;
            kit::server::shutdown_on_signals(app.shutdown.clone());
            let names: Vec<_> = app.services().iter().map(|s| s.name()).collect();
            tracing::info!(services = %names.join(","), "OllamaNet listening on http://{addr}");
            // A machine-readable line for scripts and tests that start the binary on port 0.
            println!("listening on {addr}");
            let opts = kit::server::ServeOptions::new(&config.server, config.gateway.header_read_timeout);
            app.serve(listener, opts).await;
            Ok(())
        }
        Command::Config(ConfigCommand::Print(common)) => {
            let config =
                config::load(cli.config.as_deref(), &Overrides { data_dir: common.data_dir, ..Default::default() })?;
            print!("{}", config::to_toml(&config, true));
            Ok(())
        }
        Command::Users(UsersCommand::Create { email, username, password_stdin: _, admin, common }) => {
            let config =
                config::load(cli.config.as_deref(), &Overrides { data_dir: common.data_dir, ..Default::default() })?;
            kit::telemetry::init_logging(config.infra.log.format, "warn");
            let mut password = String::new();
            std::io::stdin().lock().read_line(&mut password).context("reading the password from stdin")?;
            let password = password.trim_end_matches(['\r', '\n']).to_owned();
            if password.is_empty() {
                bail!("no password on stdin");
            }
            let platform = Platform::new(config.infra.clone(), "cli")?;
            let new = ollamanet_auth::NewUser { email, username, password, admin };
            let id = ollamanet_auth::create_user(&platform, &config.auth, new).await?;
            println!("{id}");
            Ok(())
        }
        Command::Models { command, common } => {
            let config =
                config::load(cli.config.as_deref(), &Overrides { data_dir: common.data_dir, ..Default::default() })?;
            kit::telemetry::init_logging(config.infra.log.format, "warn");
            crate::models::run(command, &config).await
        }
        Command::Announce(args) => announce(cli.config.as_deref(), args).await,
        Command::Doctor(args) => {
            let overrides = Overrides { listen: args.listen, data_dir: args.common.data_dir };
            let config = config::load(cli.config.as_deref(), &overrides)?;
            let services = if args.only.is_empty() { Service::ALL.to_vec() } else { args.only };
            let findings = crate::doctor::check(&config, &services);
            for finding in &findings {
                println!("{finding}");
            }
            let unsafe_ = findings.iter().filter(|f| f.severity == crate::doctor::Severity::Unsafe).count();
            println!("{} finding(s), {unsafe_} unsafe", findings.len());
            if unsafe_ > 0 {
                bail!("the configuration is unsafe for {}", config.listen);
            }
            Ok(())
        }
        // `main` runs it before there is a runtime.
        Command::ExtractDocument(_) | Command::RenderTemplates(_) => bail!("this command is run by the server itself"),
        Command::Routes(RoutesCommand::Print(common)) => {
            let config =
                config::load(cli.config.as_deref(), &Overrides { data_dir: common.data_dir, ..Default::default() })?;
            let table = ollamanet_gateway::load_table(&config.gateway)?;
            for rule in table.rules() {
                let methods = if rule.methods.is_empty() {
                    "*".to_owned()
                } else {
                    rule.methods.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(",")
                };
                let access = match (rule.access, rule.roles.is_empty()) {
                    (_, false) => format!("roles {}", rule.roles.join("|")),
                    (ollamanet_gateway::Access::Anonymous, true) => "anonymous".to_owned(),
                    (ollamanet_gateway::Access::Authenticated, true) => "authenticated".to_owned(),
                };
                println!("{methods:<12} {:<45} {:<10} {access}", rule.path, rule.service);
            }
            Ok(())
        }
    }
}

async fn announce(config_file: Option<&std::path::Path>, args: AnnounceArgs) -> anyhow::Result<()> {
    let config = config::load(config_file, &Overrides { data_dir: args.common.data_dir, ..Default::default() })?;
    kit::telemetry::init_logging(config.infra.log.format, &config.infra.log.level);
    if config.infra.amqp_url.is_none() {
        bail!("announcing needs the platform's RabbitMQ: set AMQP_URL");
    }
    let mut upstream = kit::upstream::Upstream::http(std::slice::from_ref(&args.url)).context("--url")?;
    // The fleet reaches announced engines with this key; so does the announcer, for its heartbeats.
    if let Some(key) = &config.inference.engine_key {
        upstream = upstream.with_authorization(kit::upstream::bearer(key).context("inference.engine_key")?);
    }
    let platform = Platform::new(config.infra.clone(), "announce")?;
    let shutdown = tokio_util::sync::CancellationToken::new();
    kit::server::shutdown_on_signals(shutdown.clone());
    // The first announcement matters most (the fleet learns the URL from it): send it connected.
    if tokio::time::timeout(std::time::Duration::from_secs(10), platform.bus.wait_connected()).await.is_err() {
        tracing::warn!("RabbitMQ is not reachable yet; announcing as soon as it is");
    }
    let capacity = args.capacity.unwrap_or(config.inference.node_capacity);
    tracing::info!(url = %args.url, "announcing until stopped");
    let task = ollamanet_inference::discovery::announce(
        platform.bus.clone(),
        args.url,
        ollama_api::OllamaClient::new(upstream),
        Some(capacity),
        shutdown,
    );
    task.await.context("the announcer stopped")?;
    platform.bus.close().await;
    Ok(())
}
