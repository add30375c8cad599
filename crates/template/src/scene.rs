//! One frame of a template as one vector scene (SVG), from which the PNG,
//! the JPEG, the video's frame and the PDF are all drawn — so they never
//! disagree. Text stays text (`<text>`, one per laid-out line) so that the
//! PDF's is selectable; pictures are referenced, not inlined, and handed to
//! the drawing engine as bytes.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::OnceLock;

use resvg::tiny_skia::{FilterQuality, Pixmap, PixmapMut, PixmapPaint, Transform};
use resvg::usvg;

use crate::colour::Colour;
use crate::fonts::Fonts;
use crate::format::{Fit, ImageLayer, Layer, Template, TextLayer};
use crate::picture::{Picture, Placement};
use crate::text::{fit, LaidText};
use crate::TemplateError;

const PLACEHOLDER_FILL: &str = "#d1d5db";
const PLACEHOLDER_INK: &str = "#4b5563";
const ASSET_SCHEME: &str = "genq-asset:";
/// The id of the group that holds picture N.
const PICTURE_ID: &str = "genq-picture-";

/// What fills a template's fields for one render.
#[derive(Clone, Default)]
pub struct Fill {
    /// Text by field key.
    pub texts: HashMap<String, String>,
    /// Pictures by field key, and by `src` URL for fixed pictures.
    pub pictures: HashMap<String, Picture>,
    /// Draw a missing value as a labelled placeholder (previews), rather
    /// than leaving its layer out.
    pub placeholders: bool,
}

/// A composed frame: drawn by [`crate::render`].
pub struct Scene {
    pub(crate) tree: usvg::Tree,
    pictures: Vec<Asset>,
    /// The pictures fitted to their boxes, in `pictures`' order: what the
    /// pixel renders draw (made on first use; a PDF needs none).
    fitted: OnceLock<Result<Vec<Pixmap>, TemplateError>>,
    pub width: u32,
    pub height: u32,
}

/// A picture the scene shows, with the layer that places it.
struct Asset {
    picture: Picture,
    fit: Fit,
    /// Where a failure to draw it is reported (`values.photo`).
    at: String,
    placement: Placement,
}

impl Scene {
    /// Composes `template` filled with `fill`.
    pub fn compose(
        template: &Template,
        fill: &Fill,
        fonts: &Fonts,
    ) -> Result<Scene, TemplateError> {
        // Text boxes are laid out at full width first; should the drawing
        // engine's own measure (its fallback font may differ from the
        // layout's) find a line wider than its box, that box is laid out
        // again with the overflow taken off its width.
        let mut width_budget: HashMap<usize, f32> = HashMap::new();
        let mut pictures = Vec::new();
        let mut attempts = 0;
        let tree = loop {
            attempts += 1;
            pictures.clear();
            let svg = svg_of(template, fill, fonts, &width_budget, &mut pictures)?;
            let tree = parse(&svg, fonts, &pictures)?;
            let overflowing = overflowing_texts(template, &tree);
            if overflowing.is_empty() || attempts > 3 {
                break tree;
            }
            for (index, overflow) in overflowing {
                let budget = width_budget
                    .entry(index)
                    .or_insert(template.layers[index].frame().width as f32);
                *budget = (*budget - overflow - 1.0).max(1.0);
            }
        };
        Ok(Scene {
            tree,
            pictures,
            fitted: OnceLock::new(),
            width: template.canvas.width,
            height: template.canvas.height,
        })
    }

    /// Draws the scene onto `pixmap`: resvg draws every layer but the
    /// pictures, which are copied in fitted (see `picture.rs`).
    pub(crate) fn draw(
        &self,
        transform: Transform,
        pixmap: &mut PixmapMut,
    ) -> Result<(), TemplateError> {
        let fitted = self
            .fitted
            .get_or_init(|| {
                self.pictures
                    .iter()
                    .map(|asset| {
                        asset
                            .picture
                            .fitted(asset.fit, &asset.placement)
                            .map_err(|why| TemplateError::new(asset.at.clone(), why))
                    })
                    .collect()
            })
            .as_ref()
            .map_err(Clone::clone)?;
        for node in self.tree.root().children() {
            let picture = match node {
                usvg::Node::Group(group) => group
                    .id()
                    .strip_prefix(PICTURE_ID)
                    .and_then(|index| index.parse::<usize>().ok()),
                _ => None,
            };
            match picture {
                Some(index) => {
                    let placement = &self.pictures[index].placement;
                    pixmap.draw_pixmap(
                        0,
                        0,
                        fitted[index].as_ref(),
                        &PixmapPaint {
                            quality: FilterQuality::Bicubic,
                            ..PixmapPaint::default()
                        },
                        transform.pre_translate(placement.x as f32, placement.y as f32),
                        None,
                    );
                }
                None => {
                    // render_node draws the node as if its bounds began
                    // at the origin; undo that to draw it in place.
                    if let Some(bounds) = node.abs_layer_bounding_box() {
                        resvg::render_node(
                            node,
                            transform.pre_translate(bounds.x(), bounds.y()),
                            pixmap,
                        );
                    }
                }
            }
        }
        Ok(())
    }
}

fn parse(svg: &str, fonts: &Fonts, pictures: &[Asset]) -> Result<usvg::Tree, TemplateError> {
    let assets: Vec<Picture> = pictures.iter().map(|a| a.picture.clone()).collect();
    let options = usvg::Options {
        fontdb: fonts.database(),
        image_href_resolver: usvg::ImageHrefResolver {
            resolve_data: Box::new(|_, _, _| None),
            resolve_string: Box::new(move |href, _| {
                let index: usize = href.strip_prefix(ASSET_SCHEME)?.parse().ok()?;
                assets.get(index).map(Picture::kind)
            }),
        },
        ..usvg::Options::default()
    };
    usvg::Tree::from_str(svg, &options)
        .map_err(|e| TemplateError::new("", format!("the composed scene did not parse: {e}")))
}

/// Text layers whose drawn text is wider than their box, with the overflow.
fn overflowing_texts(template: &Template, tree: &usvg::Tree) -> Vec<(usize, f32)> {
    let mut overflowing = Vec::new();
    for (index, layer) in template.layers.iter().enumerate() {
        let Layer::Text(_) = layer else { continue };
        let Some(node) = tree.node_by_id(&text_id(index)) else {
            continue;
        };
        let frame = layer.frame();
        let bounds = node.abs_bounding_box();
        let overflow = (frame.x as f32 - bounds.left()).max(0.0)
            + (bounds.right() - (frame.x + frame.width) as f32).max(0.0);
        if overflow > 0.5 {
            overflowing.push((index, overflow));
        }
    }
    overflowing
}

fn text_id(index: usize) -> String {
    format!("text-{index}")
}

fn svg_of(
    template: &Template,
    fill: &Fill,
    fonts: &Fonts,
    width_budget: &HashMap<usize, f32>,
    pictures: &mut Vec<Asset>,
) -> Result<String, TemplateError> {
    let canvas = &template.canvas;
    let mut svg = String::with_capacity(4096);
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}">"#,
        w = canvas.width,
        h = canvas.height
    );
    let background = Colour::parse(&canvas.background).unwrap_or(Colour::opaque(255, 255, 255));
    let _ = write!(
        svg,
        r#"<rect width="{}" height="{}" fill="{}" fill-opacity="{}"/>"#,
        canvas.width,
        canvas.height,
        background.svg_rgb(),
        background.opacity()
    );
    for (index, layer) in template.layers.iter().enumerate() {
        let frame = layer.frame();
        let clip = format!("clip-{index}");
        let _ = write!(
            svg,
            r#"<clipPath id="{clip}"><rect x="{}" y="{}" width="{}" height="{}"/></clipPath>"#,
            frame.x, frame.y, frame.width, frame.height
        );
        match layer {
            Layer::Rect(rect) => {
                let colour = Colour::parse(&rect.color).unwrap_or(Colour::opaque(0, 0, 0));
                let _ = write!(
                    svg,
                    r#"<rect x="{}" y="{}" width="{}" height="{}" rx="{r}" ry="{r}" fill="{}" fill-opacity="{}"/>"#,
                    frame.x,
                    frame.y,
                    frame.width,
                    frame.height,
                    colour.svg_rgb(),
                    colour.opacity(),
                    r = rect.radius
                );
            }
            Layer::Image(image) => {
                let (key, at) = match (&image.field, &image.src) {
                    (Some(field), _) => (field.as_str(), format!("values.{field}")),
                    (None, Some(src)) => (src.as_str(), format!("layers[{index}].src")),
                    (None, None) => ("", String::new()),
                };
                match fill.pictures.get(key) {
                    Some(picture) => {
                        picture_svg(&mut svg, image, &clip, pictures.len());
                        pictures.push(Asset {
                            picture: picture.clone(),
                            fit: image.fit,
                            at,
                            placement: picture.placement(image),
                        });
                    }
                    None if fill.placeholders => {
                        let label = placeholder_label(template, image.field.as_deref(), "Image");
                        placeholder_svg(&mut svg, template, index, fonts, &label, &clip);
                    }
                    None => {}
                }
            }
            Layer::Text(text) => {
                let value = match (&text.field, &text.text) {
                    (Some(field), _) => fill.texts.get(field).cloned(),
                    (None, fixed) => fixed.clone(),
                };
                let budget = width_budget
                    .get(&index)
                    .copied()
                    .unwrap_or(frame.width as f32);
                match value {
                    Some(value) => {
                        text_svg(&mut svg, text, index, fonts, &value, budget, 1.0, &clip)
                    }
                    None if fill.placeholders => {
                        let label = placeholder_label(template, text.field.as_deref(), "Text");
                        text_svg(&mut svg, text, index, fonts, &label, budget, 0.45, &clip);
                    }
                    None => {}
                }
            }
        }
    }
    svg.push_str("</svg>");
    Ok(svg)
}

fn picture_svg(svg: &mut String, image: &ImageLayer, clip: &str, asset: usize) {
    let aspect = match image.fit {
        Fit::Cover => "xMidYMid slice",
        Fit::Contain => "xMidYMid meet",
        Fit::Fill => "none",
    };
    let _ = write!(
        svg,
        r#"<g id="{PICTURE_ID}{asset}" clip-path="url(#{clip})"><image x="{}" y="{}" width="{}" height="{}" preserveAspectRatio="{aspect}" href="{ASSET_SCHEME}{asset}"/></g>"#,
        image.x, image.y, image.width, image.height
    );
}

#[allow(clippy::too_many_arguments)]
fn text_svg(
    svg: &mut String,
    layer: &TextLayer,
    index: usize,
    fonts: &Fonts,
    value: &str,
    width: f32,
    opacity: f32,
    clip: &str,
) {
    let laid: LaidText = fit(fonts, layer, value, width, layer.height as f32);
    let colour = Colour::parse(&layer.color).unwrap_or(Colour::opaque(0, 0, 0));
    let family = fonts.canonical_family(&layer.font);
    let _ = write!(
        svg,
        r#"<g id="{}" clip-path="url(#{clip})" font-family="{}" font-size="{}" font-weight="{}" fill="{}" fill-opacity="{}">"#,
        text_id(index),
        escape(&quoted_family(&family)),
        laid.size,
        layer.weight,
        colour.svg_rgb(),
        colour.opacity() * opacity
    );
    for line in &laid.lines {
        let left = layer.x as f32 + line.left;
        let baseline = layer.y as f32 + line.baseline;
        // A right-to-left line is anchored at its right edge, in its own
        // direction, so that the drawing engine orders mixed runs as the
        // layout did.
        if line.right_to_left {
            let _ = write!(
                svg,
                r#"<text x="{}" y="{baseline}" direction="rtl" xml:space="preserve">{}</text>"#,
                left + line.width,
                escape(&line.text)
            );
        } else {
            let _ = write!(
                svg,
                r#"<text x="{left}" y="{baseline}" xml:space="preserve">{}</text>"#,
                escape(&line.text)
            );
        }
    }
    svg.push_str("</g>");
}

fn placeholder_label(template: &Template, field: Option<&str>, fallback: &str) -> String {
    field
        .and_then(|key| template.fields.get(key).map(|f| (key, f)))
        .map(|(key, f)| {
            if f.label.is_empty() {
                key.to_owned()
            } else {
                f.label.clone()
            }
        })
        .unwrap_or_else(|| fallback.to_owned())
}

/// A grey box with the field's label: where a picture will go.
fn placeholder_svg(
    svg: &mut String,
    template: &Template,
    index: usize,
    fonts: &Fonts,
    label: &str,
    clip: &str,
) {
    let frame = template.layers[index].frame();
    let _ = write!(
        svg,
        r#"<rect x="{}" y="{}" width="{}" height="{}" fill="{PLACEHOLDER_FILL}" stroke="{PLACEHOLDER_INK}" stroke-width="4" stroke-dasharray="16 12" clip-path="url(#{clip})"/>"#,
        frame.x, frame.y, frame.width, frame.height
    );
    let size = (frame.height / 6.0).clamp(8.0, 64.0);
    let caption = TextLayer {
        field: None,
        text: None,
        x: frame.x,
        y: frame.y,
        width: frame.width,
        height: frame.height,
        font: crate::format::DEFAULT_FONT.into(),
        size,
        min_size: Some(size.min(8.0)),
        weight: 700,
        color: PLACEHOLDER_INK.into(),
        align: Some(crate::format::Align::Center),
        vertical_align: crate::format::VerticalAlign::Middle,
        line_height: 1.2,
    };
    text_svg(
        svg,
        &caption,
        index,
        fonts,
        label,
        frame.width as f32,
        1.0,
        clip,
    );
}

/// XML-escapes text and attribute values.
fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&apos;"),
            // Not allowed in XML 1.0 at all.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => {}
            c => escaped.push(c),
        }
    }
    escaped
}

fn quoted_family(family: &str) -> String {
    format!("'{}'", family.replace('\'', ""))
}

impl Scene {
    /// Every line of text drawn, in drawing order.
    pub fn texts(&self) -> Vec<String> {
        let mut texts = Vec::new();
        visit_texts(self.tree.root(), &mut |text| {
            texts.extend(text.chunks().iter().map(|chunk| chunk.text().to_owned()));
        });
        texts
    }

    /// Characters drawn as the font's "missing glyph" box: no installed
    /// font has them.
    pub fn missing_glyphs(&self) -> usize {
        let mut missing = 0;
        visit_texts(self.tree.root(), &mut |text| {
            missing += text
                .layouted()
                .iter()
                .flat_map(|span| &span.positioned_glyphs)
                .filter(|glyph| glyph.id.0 == 0)
                .count();
        });
        missing
    }
}

fn visit_texts(group: &usvg::Group, visit: &mut dyn FnMut(&usvg::Text)) {
    for node in group.children() {
        match node {
            usvg::Node::Group(inner) => visit_texts(inner, visit),
            usvg::Node::Text(text) => visit(text),
            _ => {}
        }
    }
}
