//! The submission forms: New video (the Image+Audio Video API) and the
//! model catalog with a form per model (the Jobs v1 gateway). The page's
//! script sends them to the dialects' own routes.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use genq_catalog::{may_use, Price};

use crate::error::PageError;
use crate::schema_form::{fields, Field};
use crate::session::Signed;
use crate::view::{dollars, html, Layout};
use crate::Console;

#[derive(Template)]
#[template(path = "new_video.html")]
struct NewVideoPage {
    layout: Layout,
}

pub(crate) async fn new_video(signed: Signed) -> Result<Response, PageError> {
    let page = NewVideoPage {
        layout: signed.layout("New video", "New video"),
    };
    Ok(html(StatusCode::OK, page.render()?))
}

struct ModelRow {
    slug: String,
    description: String,
    price: String,
    output: String,
}

fn price_text(price: &Price) -> String {
    match price {
        Price::Flat(cost) => format!("{} a job", dollars(*cost)),
        Price::PerSecond {
            micro_cents,
            seconds_from,
            ..
        } if seconds_from == "text" => format!("{} a second of speech", dollars(*micro_cents)),
        Price::PerSecond { micro_cents, .. } => format!("{} a second", dollars(*micro_cents)),
    }
}

#[derive(Template)]
#[template(path = "models.html")]
struct ModelsPage {
    layout: Layout,
    models: Vec<ModelRow>,
}

pub(crate) async fn models(
    State(console): State<Console>,
    signed: Signed,
) -> Result<Response, PageError> {
    let mut models: Vec<ModelRow> = console
        .settings
        .catalog
        .models()
        .filter(|m| may_use(&signed.principal, &m.slug))
        .map(|m| ModelRow {
            slug: m.slug.clone(),
            description: m.description.clone(),
            price: price_text(&m.price),
            output: format!("{:?}", m.output).to_lowercase(),
        })
        .collect();
    models.sort_by(|a, b| a.slug.cmp(&b.slug));
    let page = ModelsPage {
        layout: signed.layout("Models", "Models"),
        models,
    };
    Ok(html(StatusCode::OK, page.render()?))
}

#[derive(Template)]
#[template(path = "model.html")]
struct ModelPage {
    layout: Layout,
    slug: String,
    description: String,
    price: String,
    fields: Vec<Field>,
}

pub(crate) async fn model_form(
    State(console): State<Console>,
    signed: Signed,
    Path(slug): Path<String>,
) -> Result<Response, PageError> {
    let model = console
        .settings
        .catalog
        .get(&slug)
        .filter(|m| may_use(&signed.principal, &m.slug))
        .ok_or(PageError::NotFound)?;
    let page = ModelPage {
        layout: signed.layout(model.slug.clone(), "Models"),
        slug: model.slug.clone(),
        description: model.description.clone(),
        price: price_text(&model.price),
        fields: fields(&model.input_schema),
    };
    Ok(html(StatusCode::OK, page.render()?))
}
