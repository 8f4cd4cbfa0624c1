//! Composes services into one process: all of them (all-in-one) or the ones `--only` names.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use anyhow::{Context, bail};
use axum::Router;
use axum::routing::get;
use kit::authn::{Authenticator, ForgetChangedUsers, RemoteIdentitySource};
use kit::bus::{EVENTS_EXCHANGE, Subscription};
use kit::config::Platform;
use kit::http::{Dependency, Readiness};
use kit::registry::{self, Heartbeat, Registry};
use kit::server::HttpService;
use kit::service::{ServiceContext, ServiceHandle};
use kit::upstream::Upstream;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::AppConfig;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Service {
    Gateway,
    Auth,
    Admin,
    Explore,
    Conversation,
    Inference,
    Engine,
    Web,
}

impl Service {
    pub const ALL: [Service; 8] = [
        Service::Gateway,
        Service::Auth,
        Service::Admin,
        Service::Explore,
        Service::Conversation,
        Service::Inference,
        Service::Engine,
        Service::Web,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Service::Gateway => "gateway",
            Service::Auth => "auth",
            Service::Admin => "admin",
            Service::Explore => "explore",
            Service::Conversation => "conversation",
            Service::Inference => "inference",
            Service::Engine => "engine",
            Service::Web => "web",
        }
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Service {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Service::ALL.into_iter().find(|svc| svc.name() == s.trim()).ok_or_else(|| {
            let names: Vec<_> = Service::ALL.iter().map(|s| s.name()).collect();
            format!("unknown service {s:?} (known: {})", names.join(", "))
        })
    }
}

/// Test hooks: replacements for things outside the platform.
#[derive(Default, Clone)]
pub struct Hooks {
    pub mailer: Option<Arc<dyn ollamanet_auth::Mailer>>,
}

/// How a process is composed, besides its services.
#[derive(Default, Clone)]
pub struct Options {
    pub hooks: Hooks,
    /// Announce this process's engine to inference services over the bus (`serve --announce`).
    pub announce_engine: bool,
}

/// A composed process, ready to serve.
pub struct App {
    pub router: HttpService,
    pub platform: Platform,
    pub shutdown: CancellationToken,
    services: Vec<Service>,
    handles: Vec<ServiceHandle>,
    /// Heartbeat tasks; each says goodbye on shutdown, before the bus closes.
    announcers: Vec<tokio::task::JoinHandle<()>>,
    engine: Option<ollamanet_engine::EngineStats>,
}

impl App {
    pub async fn build(config: &AppConfig, services: &[Service], options: Options) -> anyhow::Result<App> {
        let Options { hooks, announce_engine } = options;
        let mut services = services.to_vec();
        services.sort();
        services.dedup();
        check_engine_placement(config, &services, announce_engine)?;
        let bus_name = services.iter().map(|s| s.name()).collect::<Vec<_>>().join("+");
        let platform = Platform::new(config.infra.clone(), &bus_name).context("starting the platform")?;
        let shutdown = CancellationToken::new();
        let tokens = &config.infra.tokens;
        // Start with the broker connected when it is up; when it is not, serve anyway (events
        // wait in the outbox) and let the bus keep reconnecting.
        if tokio::time::timeout(std::time::Duration::from_secs(5), platform.bus.wait_connected()).await.is_err() {
            tracing::warn!("RabbitMQ is not reachable yet; starting without it");
        }

        // With a shared bus, instances find each other through their heartbeats.
        let registry = match config.infra.amqp_url {
            Some(_) => Some(Registry::listen(&platform.bus).await),
            None => None,
        };
        let remote = |name: &str| -> anyhow::Result<Option<Upstream>> {
            match (config.upstreams.get(name).filter(|u| !u.0.is_empty()), &registry) {
                (Some(urls), _) => Ok(Some(Upstream::http(&urls.0).with_context(|| format!("upstreams.{name}"))?)),
                (None, Some(registry)) => Ok(Some(Upstream::discovered(registry.clone(), name))),
                (None, None) => Ok(None),
            }
        };

        let mut handles = Vec::new();
        // Every service but the engine (which has no users) needs to know who calls it.
        let authn = if services.contains(&Service::Auth) {
            let auth = match hooks.mailer {
                Some(mailer) => {
                    ollamanet_auth::start_with_mailer(&platform, &config.auth, shutdown.clone(), mailer).await
                }
                None => ollamanet_auth::start(&platform, &config.auth, shutdown.clone()).await,
            }
            .context("starting the auth service")?;
            handles.push(auth.handle);
            Some(auth.authenticator)
        } else if services.iter().any(|s| *s != Service::Engine) {
            let Some(upstream) = remote("auth")? else {
                bail!(
                    "the auth service is not in this process: set upstreams.auth (OLLAMANET_UPSTREAMS__AUTH) to its \
                     URL, or AMQP_URL so that it is discovered"
                );
            };
            let source = RemoteIdentitySource(upstream);
            Some(Arc::new(Authenticator::new(
                Arc::new(source),
                platform.cache.clone(),
                &tokens.issuer,
                &tokens.audience,
                false,
            )))
        } else {
            None
        };
        if let Some(authn) = &authn {
            // Processes whose cache is private learn about revoked tokens from the bus.
            platform
                .bus
                .subscribe(
                    Subscription::broadcast(EVENTS_EXCHANGE, "authn", &["user.updated", "user.deleted"]),
                    Arc::new(ForgetChangedUsers(authn.clone())),
                )
                .await;
        }
        let ctx = authn.map(|authn| ServiceContext { platform: platform.clone(), authn, shutdown: shutdown.clone() });

        let mut engine_stats = None;
        let mut local_engine = None;
        if services.contains(&Service::Engine) {
            let engine = ollamanet_engine::start(&platform, &config.engine, shutdown.clone())
                .await
                .context("starting the engine")?;
            local_engine = Some(Upstream::in_process(engine.handle.router.clone()));
            engine_stats = Some(engine.stats);
            handles.push(engine.handle);
        }
        if let Some(ctx) = ctx.as_ref().filter(|_| services.contains(&Service::Inference)) {
            let uncatalogued = config.inference.uncatalogued_for(crate::doctor::exposed(&config.listen));
            let access = ollamanet_inference::CatalogAccess::start(&platform, uncatalogued)
                .await
                .context("opening the catalog")?;
            let inference = ollamanet_inference::start(ctx, &config.inference, local_engine.clone(), access)
                .await
                .context("starting the inference service")?;
            handles.push(inference.handle);
        }
        let inference_upstream = |handles: &[ServiceHandle]| -> anyhow::Result<Upstream> {
            match handles.iter().find(|h| h.name == ollamanet_inference::NAME) {
                Some(h) => Ok(Upstream::in_process(h.router.clone())),
                None => remote("inference")?.context(
                    "the inference service is not in this process: set upstreams.inference \
                     (OLLAMANET_UPSTREAMS__INFERENCE) to its URL, or AMQP_URL so that it is discovered",
                ),
            }
        };
        if let Some(ctx) = ctx.as_ref().filter(|_| services.contains(&Service::Admin)) {
            let admin = ollamanet_admin::start(ctx, inference_upstream(&handles)?)
                .await
                .context("starting the admin service")?;
            handles.push(admin.handle);
        }
        if let Some(ctx) = ctx.as_ref().filter(|_| services.contains(&Service::Explore)) {
            let explore = ollamanet_explore::start(ctx).await.context("starting the explore service")?;
            handles.push(explore.handle);
        }
        if let Some(ctx) = ctx.as_ref().filter(|_| services.contains(&Service::Conversation)) {
            let inference = inference_upstream(&handles)?;
            let conversation = ollamanet_conversation::start(ctx, &config.conversation, inference)
                .await
                .context("starting the conversation service")?;
            handles.push(conversation.handle);
        }

        if let Some(ctx) = ctx.as_ref().filter(|_| services.contains(&Service::Web)) {
            let local =
                |name: &str| handles.iter().find(|h| h.name == name).map(|h| Upstream::in_process(h.router.clone()));
            let auth = match local(ollamanet_auth::NAME) {
                Some(auth) => auth,
                None => remote("auth")?.context("the web service needs the auth service: set upstreams.auth")?,
            };
            let optional = |name: &str| match local(name) {
                Some(upstream) => Ok(Some(upstream)),
                None => remote(name),
            };
            let upstreams = ollamanet_web::Upstreams {
                auth,
                admin: optional(ollamanet_admin::NAME)?,
                conversation: optional(ollamanet_conversation::NAME)?,
                explore: optional(ollamanet_explore::NAME)?,
                inference: optional(ollamanet_inference::NAME)?,
            };
            handles.push(ollamanet_web::start(ctx, &config.web, upstreams).handle);
        }

        // The services on this process's listener. The engine's API never shares one: beside
        // inference it is only called in-process.
        let served = || handles.iter().filter(|h| h.name != ollamanet_engine::NAME || services == [Service::Engine]);
        let mut readiness = Readiness::default()
            .with(Dependency::Cache(platform.cache.clone()))
            .with(Dependency::Bus(platform.bus.clone()));
        for h in &handles {
            readiness.extend(&h.readiness);
        }

        let mut announcers = Vec::new();
        if let Some(url) = &config.advertise_url {
            for h in served() {
                let hb = Heartbeat {
                    name: h.name.to_owned(),
                    instance_id: platform.instance_id.clone(),
                    base_url: url.clone(),
                    version: env!("CARGO_PKG_VERSION").to_owned(),
                    capabilities: Vec::new(),
                    leaving: false,
                };
                announcers.push(registry::announce(platform.bus.clone(), hb, shutdown.clone()).await);
            }
        }
        if let Some(engine) = local_engine.filter(|_| announce_engine) {
            let Some(url) = &config.advertise_url else {
                bail!("--announce needs the URL inference services reach this engine at: set advertise_url");
            };
            announcers.push(ollamanet_inference::discovery::announce(
                platform.bus.clone(),
                url.clone(),
                ollama_api::OllamaClient::new(engine),
                Some(config.engine.parallel),
                shutdown.clone(),
            ));
        }

        let router = if let Some(ctx) = ctx.as_ref().filter(|_| services.contains(&Service::Gateway)) {
            let mut upstreams: HashMap<String, Upstream> =
                served().map(|h| (h.name.to_owned(), Upstream::in_process(h.router.clone()))).collect();
            let table = ollamanet_gateway::load_table(&config.gateway)?;
            let named: std::collections::BTreeSet<String> =
                config.upstreams.keys().cloned().chain(table.services.iter().cloned()).collect();
            for name in named {
                if !upstreams.contains_key(&name)
                    && let Some(upstream) = remote(&name)?
                {
                    upstreams.insert(name, upstream);
                }
            }
            let docs = served().map(|h| h.openapi.clone()).collect();
            let ops = kit::http::ops_routes("gateway", readiness, config.infra.ops_token.clone());
            let (gateway, _) =
                ollamanet_gateway::start(ctx, &config.gateway, upstreams, docs, ops).context("starting the gateway")?;
            gateway
        } else {
            // Without the gateway, the process serves its services' routes directly (split mode).
            // Each service's router ends in the same not-found problem; axum merges routers only
            // when at most one has a fallback, so the merged router gets that one fallback.
            let mut merged = utoipa::openapi::OpenApiBuilder::new().build();
            let mut router = Router::new();
            for h in served() {
                merged.merge(h.openapi.clone());
                router = router.merge(h.router.clone().reset_fallback());
            }
            let name = services.first().map(|s| s.name()).unwrap_or("ollamanet");
            let doc = Arc::new(merged);
            let not_found =
                kit::http::edge_layers(Router::new().fallback(|| async { kit::Problem::not_found("route") }));
            let router = router
                .merge(kit::http::ops_routes(name, readiness, config.infra.ops_token.clone()))
                .route("/openapi.json", get(move || async move { axum::Json(doc.as_ref().clone()) }))
                .fallback_service(not_found);
            HttpService::new(match &config.engine.key {
                Some(key) if services == [Service::Engine] => ollamanet_engine::require_key(router, key),
                _ => router,
            })
        };
        Ok(App { router, platform, shutdown, services, handles, announcers, engine: engine_stats })
    }

    pub fn services(&self) -> &[Service] {
        &self.services
    }

    /// The engine's counters, when this process runs the engine.
    pub fn engine(&self) -> Option<&ollamanet_engine::EngineStats> {
        self.engine.as_ref()
    }

    /// Serves until the shutdown token is cancelled, then drains and closes connections to the
    /// bus and databases.
    pub async fn serve(self, listener: TcpListener, opts: kit::server::ServeOptions) {
        kit::server::serve(listener, self.router, self.shutdown.clone(), opts).await;
        self.shutdown.cancel();
        let goodbyes = futures::future::join_all(self.announcers);
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), goodbyes).await;
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), self.platform.bus.close()).await;
        drop(self.handles);
    }
}

/// Where the engine may run: beside the inference service that calls it (it then has no listener),
/// or alone, its API on the process's listener behind `engine.key`. A keyless engine may only
/// listen on loopback (a drop-in Ollama for local clients; `doctor` warns about it); an announced
/// one needs its key.
fn check_engine_placement(config: &AppConfig, services: &[Service], announce: bool) -> anyhow::Result<()> {
    let alone = services == [Service::Engine];
    if announce && !alone {
        bail!("--announce announces an engine process of its own: use it with --only engine");
    }
    if !services.contains(&Service::Engine) || services.contains(&Service::Inference) {
        return Ok(());
    }
    if !alone {
        bail!(
            "the engine's API never shares a listener with other services: run it beside the inference service \
             (--only inference,engine,…), where it is called in-process, or as a process of its own (--only engine)"
        );
    }
    if config.engine.key.is_some() {
        return Ok(());
    }
    if announce {
        bail!(
            "an announced engine is reached over the network: set engine.key (OLLAMANET_ENGINE__KEY), and the same \
             value as inference.engine_key on the inference services"
        );
    }
    if crate::doctor::exposed(&config.listen) {
        bail!(
            "the engine's API (which pulls and deletes models) would be open on {}: set engine.key \
             (OLLAMANET_ENGINE__KEY) and give inference services the same key, or listen on loopback",
            config.listen
        );
    }
    Ok(())
}
