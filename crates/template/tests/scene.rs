//! Templates as a studio writes them: checked with errors that name the
//! place, filled with values, and drawn — text kept inside its box, every
//! script in glyphs, the PNG and the PDF from one scene.

use std::sync::OnceLock;

use genq_template::{Fill, Fonts, Picture, Scene, Template, TemplateError, Values};
use serde_json::{json, Value};

fn fonts() -> &'static Fonts {
    static FONTS: OnceLock<Fonts> = OnceLock::new();
    FONTS.get_or_init(|| Fonts::load(&[]))
}

/// The issue's example template (its fixed logo comes from a URL).
fn spring_campaign() -> Value {
    json!({
      "name": "Spring campaign",
      "type": "video",
      "startDate": "2026-04-01T00:00:00Z",
      "endDate": null,
      "canvas": {"width": 1080, "height": 1920, "background": "#101820"},
      "fields": {
        "headline":  {"label": "Headline",  "type": "text", "required": true, "maxLength": 80},
        "avatar":    {"label": "Avatar",    "type": "image"},
        "voiceover": {"label": "Voiceover", "type": "audio"}
      },
      "layers": [
        {"kind": "image", "field": "avatar", "x": 0, "y": 0, "width": 1080, "height": 1350, "fit": "cover"},
        {"kind": "rect", "x": 0, "y": 1350, "width": 1080, "height": 570, "color": "#000000cc"},
        {"kind": "text", "field": "headline", "x": 60, "y": 1400, "width": 960, "height": 300,
         "font": "DejaVu Sans", "size": 72, "color": "#ffffff", "align": "center"},
        {"kind": "text", "text": "example.com", "x": 60, "y": 1800, "width": 960, "height": 60, "size": 32, "color": "#aaaaaa"},
        {"kind": "image", "src": "https://brand.example/logo.png", "x": 900, "y": 40, "width": 140, "height": 140, "fit": "contain"}
      ],
      "audio": {"field": "voiceover"},
      "duration": 10
    })
}

fn checked(value: Value) -> Result<Template, TemplateError> {
    let template = Template::from_json(value.to_string().as_bytes())?;
    template.check(fonts())?;
    Ok(template)
}

fn refusal(mut edit: impl FnMut(&mut Value)) -> TemplateError {
    let mut value = spring_campaign();
    edit(&mut value);
    checked(value).expect_err("the edited template must be refused")
}

#[test]
fn the_example_template_is_valid_and_keeps_its_fields_in_order() {
    let template = checked(spring_campaign()).unwrap();
    // A `Value` sorts its keys; the template's text keeps the author's order.
    let text = r#"{"type": "image", "canvas": {"width": 10, "height": 10},
        "fields": {"zeta": {"type": "text"}, "alpha": {"type": "text"}},
        "layers": [{"kind": "text", "field": "alpha", "x": 0, "y": 0, "width": 10, "height": 10},
                   {"kind": "text", "field": "zeta", "x": 0, "y": 0, "width": 10, "height": 10}]}"#;
    let ordered = Template::from_json(text.as_bytes()).unwrap();
    assert_eq!(ordered.fields.keys().collect::<Vec<_>>(), ["zeta", "alpha"]);
    assert!(!template.active_at("2026-03-31T23:59:59Z".parse().unwrap()));
    assert!(template.active_at("2026-04-01T00:00:00Z".parse().unwrap()));
}

#[test]
fn each_invalid_template_is_refused_naming_the_problem() {
    let e = refusal(|t| t["layers"][2]["field"] = json!("subtitle"));
    assert_eq!(e.at, "layers[2].field");
    assert!(e.problem.contains("unknown field \"subtitle\""), "{e}");

    let e = refusal(|t| t["fields"]["tagline"] = json!({"label": "Tagline", "type": "text"}));
    assert_eq!(e.at, "fields.tagline");
    assert!(e.problem.contains("no layer"), "{e}");

    let e = refusal(|t| t["layers"][1]["y"] = json!(1500));
    assert_eq!(e.at, "layers[1]");
    assert!(e.problem.contains("not inside the 1080x1920 canvas"), "{e}");

    let e = refusal(|t| t["layers"][2]["font"] = json!("Comic Papyrus"));
    assert_eq!(e.at, "layers[2].font");
    assert!(e.problem.contains("Comic Papyrus"), "{e}");

    let e = refusal(|t| t["layers"][1]["color"] = json!("#00000"));
    assert_eq!(e.at, "layers[1].color");

    let e = refusal(|t| t["canvas"]["width"] = json!(4097));
    assert_eq!(e.at, "canvas.width");
    assert!(e.problem.contains("4096"), "{e}");

    let e = refusal(|t| t["layers"][0]["field"] = json!("headline"));
    assert_eq!(e.at, "layers[0].field");
    assert!(e.problem.contains("a text field"), "{e}");

    let e = refusal(|t| t["layers"][0]["fit"] = json!("stretch"));
    assert_eq!(e.at, "layers[0].fit");

    let e = refusal(|t| t["layers"][3]["kind"] = json!("circle"));
    assert_eq!(e.at, "layers[3].kind");

    let e = refusal(|t| t["layer"] = json!([]));
    assert!(e.problem.contains("unknown field `layer`"), "{e}");
}

#[test]
fn values_are_checked_against_the_fields() {
    let template = checked(spring_campaign()).unwrap();
    let check = |values: Value| Values::check(&template, Some(&values));

    let values = check(json!({
        "headline": "Hello",
        "avatar": {"image_url": "https://cdn.example/a.jpg"},
        "voiceover": {"audio_url": "https://cdn.example/v.mp3",
                      "effects": [{"type": "trim", "start": 1, "end": 4}, {"type": "normalize"}]},
        "extra": "kept in the input, not rendered"
    }))
    .unwrap();
    assert_eq!(values.texts["headline"], "Hello");
    assert_eq!(values.images["avatar"], "https://cdn.example/a.jpg");
    assert_eq!(values.audio["voiceover"].effects.len(), 2);
    assert!(!values.texts.contains_key("extra"));

    let e = check(json!({})).unwrap_err();
    assert_eq!(
        (e.at.as_str(), e.problem.as_str()),
        ("values.headline", "is required")
    );
    let e = check(json!({"headline": "x".repeat(81)})).unwrap_err();
    assert!(e.problem.contains("81 characters"), "{e}");
    let e = check(json!({"headline": "Hi", "avatar": "https://cdn.example/a.jpg"})).unwrap_err();
    assert_eq!(e.at, "values.avatar");
    let e = check(json!({"headline": "Hi", "avatar": {"image_url": "file:///etc/passwd"}}))
        .unwrap_err();
    assert_eq!(e.at, "values.avatar.image_url");
    // An http(s) URL without a host is refused at submission too.
    for hostless in ["https://", "http:///a.jpg", "https://?x", "http:// a.jpg"] {
        let e = check(json!({"headline": "Hi", "avatar": {"image_url": hostless}})).unwrap_err();
        assert_eq!(e.at, "values.avatar.image_url", "{hostless}");
    }
    assert!(genq_template::is_fetchable_url("HTTPS://cdn.example/a.jpg"));
    assert!(genq_template::is_fetchable_url(
        "data:image/png;base64,AAAA"
    ));
    let e = check(
        json!({"headline": "Hi", "voiceover": {"audio_url": "https://a/v.mp3",
        "effects": [{"type": "reverb"}]}}),
    )
    .unwrap_err();
    assert_eq!(e.at, "values.voiceover.effects[0].type");
    assert!(e.problem.contains("\"reverb\" is not an effect"), "{e}");
    let e = check(
        json!({"headline": "Hi", "voiceover": {"audio_url": "https://a/v.mp3",
        "effects": [{"type": "volume", "level": 5}]}}),
    )
    .unwrap_err();
    assert_eq!(e.at, "values.voiceover.effects[0].level");
    let e = check(json!({"headline": 7})).unwrap_err();
    assert_eq!(e.at, "values.headline");
}

fn one_text_box(text_layer: Value) -> Template {
    checked(json!({
        "type": "image",
        "canvas": {"width": 800, "height": 600, "background": "#102030"},
        "fields": {"headline": {"label": "Headline", "type": "text"}},
        "layers": [text_layer]
    }))
    .unwrap()
}

fn draw(template: &Template, texts: &[(&str, &str)]) -> Scene {
    let fill = Fill {
        texts: texts
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Fill::default()
    };
    Scene::compose(template, &fill, fonts()).unwrap()
}

/// Pixels that differ from the background, inside and outside the box.
fn ink(scene: &Scene, bx: (u32, u32, u32, u32)) -> (usize, usize) {
    let rgb = scene.rgb(1.0).unwrap();
    let background = image::Rgb([0x10, 0x20, 0x30]);
    let (mut inside, mut outside) = (0, 0);
    for (x, y, pixel) in rgb.enumerate_pixels() {
        if *pixel == background {
            continue;
        }
        let within = x >= bx.0 && x < bx.0 + bx.2 && y >= bx.1 && y < bx.1 + bx.3;
        if within {
            inside += 1;
        } else {
            outside += 1;
        }
    }
    (inside, outside)
}

#[test]
fn a_long_headline_is_shrunk_and_wrapped_inside_its_box() {
    let template = one_text_box(json!({
        "kind": "text", "field": "headline", "x": 100, "y": 150, "width": 600, "height": 200,
        "size": 72, "color": "#ffffff", "align": "center"
    }));
    let words = "Spring savings on every bouquet, planter and garden tool in the store";
    let headline: String = std::iter::repeat_n(words, 5).collect::<Vec<_>>().join(" ");
    let headline = &headline[..300];
    let scene = draw(&template, &[("headline", headline)]);
    let (inside, outside) = ink(&scene, (100, 150, 600, 200));
    assert!(inside > 2_000, "the text is drawn: {inside} pixels");
    assert_eq!(outside, 0, "no pixel outside the box changes");

    let Some(genq_template::Layer::Text(layer)) = template.layers.first() else {
        unreachable!()
    };
    let laid = genq_template::fit(fonts(), layer, headline, 600.0, 200.0);
    assert!(laid.size < 72.0, "shrunk from 72 px to {}", laid.size);
    assert!(
        laid.lines.len() > 2,
        "wrapped onto {} lines",
        laid.lines.len()
    );
    assert!(!laid.truncated);
    let rejoined = laid
        .lines
        .iter()
        .map(|l| l.text.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    assert_eq!(
        rejoined,
        headline.trim_end(),
        "wrapped at word boundaries, nothing lost"
    );
}

#[test]
fn text_that_cannot_fit_at_the_smallest_size_is_cut_at_a_line_with_an_ellipsis() {
    let template = one_text_box(json!({
        "kind": "text", "field": "headline", "x": 50, "y": 50, "width": 300, "height": 40,
        "size": 30, "minSize": 20, "color": "#ffffff"
    }));
    let Some(genq_template::Layer::Text(layer)) = template.layers.first() else {
        unreachable!()
    };
    let long = "word ".repeat(60);
    let laid = genq_template::fit(fonts(), layer, &long, 300.0, 40.0);
    assert!(laid.truncated);
    assert_eq!(laid.size, 20.0);
    assert_eq!(laid.lines.len(), 1);
    assert!(
        laid.lines[0].text.ends_with('…'),
        "{:?}",
        laid.lines[0].text
    );
    let scene = draw(&template, &[("headline", &long)]);
    let (inside, outside) = ink(&scene, (50, 50, 300, 40));
    assert!(inside > 100);
    assert_eq!(outside, 0);
}

#[test]
fn arabic_and_cjk_values_render_as_glyphs_not_boxes() {
    let template = one_text_box(json!({
        "kind": "text", "field": "headline", "x": 40, "y": 40, "width": 720, "height": 400,
        "size": 48, "color": "#ffffff"
    }));
    for (script, text) in [
        ("Arabic", "مرحبا بكم في حملة الربيع"),
        ("CJK", "春季促销活动欢迎您"),
        ("Latin", "Spring campaign"),
    ] {
        let scene = draw(&template, &[("headline", text)]);
        if script == "CJK"
            && scene.missing_glyphs() > 0
            && !fonts().families().iter().any(|f| {
                f.contains("CJK") || f.contains("WenQuanYi") || f.contains("Droid Sans Fallback")
            })
        {
            eprintln!("skipped: no CJK font installed (scripts/deps --test installs one)");
            continue;
        }
        assert_eq!(
            scene.missing_glyphs(),
            0,
            "{script}: every character has a glyph"
        );
        let (inside, _) = ink(&scene, (40, 40, 720, 400));
        assert!(inside > 500, "{script}: drawn ({inside} pixels)");
    }
}

#[test]
fn right_to_left_text_starts_on_the_right() {
    let template = one_text_box(json!({
        "kind": "text", "field": "headline", "x": 0, "y": 0, "width": 800, "height": 100,
        "size": 40, "color": "#ffffff"
    }));
    let scene = draw(&template, &[("headline", "مرحبا")]);
    let rgb = scene.rgb(1.0).unwrap();
    let background = image::Rgb([0x10, 0x20, 0x30]);
    let inked_columns: Vec<u32> = (0..800)
        .filter(|&x| (0..100).any(|y| *rgb.get_pixel(x, y) != background))
        .collect();
    assert!(
        *inked_columns.first().unwrap() > 400,
        "drawn on the right half"
    );
    assert!(*inked_columns.last().unwrap() <= 800);
}

#[test]
fn pictures_fill_their_boxes_and_placeholders_label_missing_values() {
    let template = checked(json!({
        "type": "image",
        "canvas": {"width": 400, "height": 300, "background": "#ffffff"},
        "fields": {"photo": {"label": "Product photo", "type": "image"},
                   "title": {"label": "Title", "type": "text"}},
        "layers": [
            {"kind": "image", "field": "photo", "x": 0, "y": 0, "width": 200, "height": 300, "fit": "cover"},
            {"kind": "text", "field": "title", "x": 210, "y": 10, "width": 180, "height": 100, "color": "#000000"}
        ]
    }))
    .unwrap();
    let red = image::RgbImage::from_pixel(64, 32, image::Rgb([255, 0, 0]));
    let mut png = Vec::new();
    red.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    let fill = Fill {
        pictures: [("photo".to_string(), Picture::from_bytes(png).unwrap())].into(),
        ..Fill::default()
    };
    let rgb = Scene::compose(&template, &fill, fonts())
        .unwrap()
        .rgb(1.0)
        .unwrap();
    // cover: the wide picture fills the tall box, cropped, not letterboxed.
    for (x, y) in [(1, 1), (100, 150), (198, 298)] {
        assert_eq!(*rgb.get_pixel(x, y), image::Rgb([255, 0, 0]), "({x}, {y})");
    }
    assert_eq!(*rgb.get_pixel(300, 200), image::Rgb([255, 255, 255]));

    let preview = Fill {
        placeholders: true,
        ..Fill::default()
    };
    let scene = Scene::compose(&template, &preview, fonts()).unwrap();
    let rgb = scene.rgb(1.0).unwrap();
    assert_eq!(
        *rgb.get_pixel(20, 20),
        image::Rgb([0xd1, 0xd5, 0xdb]),
        "a grey placeholder"
    );
    assert_eq!(
        scene.texts().join(" "),
        "Product photo Title",
        "labels, wrapped in their boxes"
    );

    assert!(Picture::from_bytes(b"not a picture".to_vec()).is_err());
}

#[test]
fn png_and_pdf_come_from_the_same_scene() {
    let template = one_text_box(json!({
        "kind": "text", "field": "headline", "x": 40, "y": 40, "width": 720, "height": 400,
        "size": 48, "color": "#ffffff"
    }));
    let scene = draw(&template, &[("headline", "Fresh <tulips> & \"daffodils\"")]);
    let png = scene.png().unwrap();
    let decoded = image::load_from_memory(&png).unwrap();
    assert_eq!((decoded.width(), decoded.height()), (800, 600));
    let pdf = scene.pdf().unwrap();
    assert!(pdf.starts_with(b"%PDF-"));
    assert_eq!(scene.texts(), ["Fresh <tulips> & \"daffodils\""]);
    // The page is 800 × 600 points and embeds a font (its text is text).
    let raw = String::from_utf8_lossy(&pdf);
    assert!(raw.contains("/MediaBox [0 0 800 600]"), "page size");
    assert!(raw.contains("/FontFile2"), "an embedded TrueType font");
    assert_eq!(
        pdf_text(&pdf)
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" "),
        "Fresh <tulips> & \"daffodils\""
    );
}

/// The PDF's text as poppler reads it (`scripts/deps --test` installs it).
fn pdf_text(pdf: &[u8]) -> String {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new("pdftotext")
        .args(["-", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("pdftotext (poppler-utils) runs");
    child.stdin.take().unwrap().write_all(pdf).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

/// A picture `width`×`height`: its left half `left`, its right half `right`.
fn halves(width: u32, height: u32, left: image::Rgba<u8>, right: image::Rgba<u8>) -> Picture {
    let picture =
        image::RgbaImage::from_fn(
            width,
            height,
            |x, _| {
                if x < width / 2 {
                    left
                } else {
                    right
                }
            },
        );
    let mut png = Vec::new();
    picture
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    Picture::from_bytes(png).unwrap()
}

#[test]
fn pictures_are_cropped_from_the_centre_letterboxed_and_blended_as_in_the_pdf() {
    let template = checked(json!({
        "type": "image",
        "canvas": {"width": 400, "height": 200, "background": "#ffffff"},
        "fields": {"wide": {"label": "Wide", "type": "image"},
                   "logo": {"label": "Logo", "type": "image"}},
        "layers": [
            {"kind": "image", "field": "wide", "x": 10.4, "y": 0, "width": 100, "height": 200, "fit": "cover"},
            {"kind": "image", "field": "logo", "x": 200, "y": 0, "width": 200, "height": 200, "fit": "contain"}
        ]
    }))
    .unwrap();
    let blue = image::Rgba([0, 0, 255, 255]);
    let red = image::Rgba([255, 0, 0, 255]);
    let fill = Fill {
        // 4:1, in a 1:2 box: only the middle eighth shows, half blue, half red.
        pictures: [
            ("wide".to_string(), halves(800, 200, blue, red)),
            // 2:1 in a square box, half-transparent black on the right.
            (
                "logo".to_string(),
                halves(200, 100, red, image::Rgba([0, 0, 0, 128])),
            ),
        ]
        .into(),
        ..Fill::default()
    };
    let scene = Scene::compose(&template, &fill, fonts()).unwrap();
    let rgb = scene.rgb(1.0).unwrap();
    assert_eq!(
        *rgb.get_pixel(15, 100),
        image::Rgb([0, 0, 255]),
        "cover: the left of the middle"
    );
    assert_eq!(
        *rgb.get_pixel(105, 100),
        image::Rgb([255, 0, 0]),
        "cover: the right of the middle"
    );
    assert_eq!(
        *rgb.get_pixel(5, 100),
        image::Rgb([255, 255, 255]),
        "nothing left of the box"
    );
    assert_eq!(
        *rgb.get_pixel(115, 100),
        image::Rgb([255, 255, 255]),
        "nothing right of the box"
    );
    // contain: 200×100 centred in 200×200, white above and below.
    assert_eq!(
        *rgb.get_pixel(250, 20),
        image::Rgb([255, 255, 255]),
        "letterbox above"
    );
    assert_eq!(*rgb.get_pixel(250, 100), image::Rgb([255, 0, 0]));
    let grey = rgb.get_pixel(350, 100).0;
    assert!(
        grey.iter().all(|&c| (120..=135).contains(&c)),
        "half-transparent black over white: {grey:?}"
    );
    assert_eq!(
        *rgb.get_pixel(250, 180),
        image::Rgb([255, 255, 255]),
        "letterbox below"
    );

    // A thumbnail shows the same picture, scaled.
    let small = scene.rgb(0.25).unwrap();
    assert_eq!(small.dimensions(), (100, 50));
    assert_eq!(*small.get_pixel(62, 25), image::Rgb([255, 0, 0]));

    // The page agrees: the PDF drawn by poppler shows the same halves.
    let pdf = scene.pdf().unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("page.pdf"), &pdf).unwrap();
    let drawn = std::process::Command::new("pdftoppm")
        .args(["-r", "72", "-png", "-singlefile", "page.pdf", "page"])
        .current_dir(dir.path())
        .status()
        .expect("pdftoppm (poppler-utils) runs");
    assert!(drawn.success());
    let page = image::open(dir.path().join("page.png")).unwrap().to_rgb8();
    for (x, y) in [(15, 100), (105, 100), (5, 100), (250, 20), (250, 100)] {
        let (a, b) = (page.get_pixel(x, y).0, rgb.get_pixel(x, y).0);
        assert!(
            a.iter().zip(b).all(|(a, b)| a.abs_diff(b) < 24),
            "({x}, {y}): page {a:?}, pixels {b:?}"
        );
    }
}

#[test]
fn a_picture_that_does_not_decode_fails_naming_its_field() {
    let template = checked(json!({
        "type": "image",
        "canvas": {"width": 100, "height": 100, "background": "#ffffff"},
        "fields": {"photo": {"label": "Photo", "type": "image"}},
        "layers": [{"kind": "image", "field": "photo", "x": 0, "y": 0, "width": 100, "height": 100}]
    }))
    .unwrap();
    let picture =
        image::RgbImage::from_fn(64, 64, |x, y| image::Rgb([x as u8 * 4, y as u8 * 4, 7]));
    let mut png = Vec::new();
    picture
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    // Its header whole, its pixels cut short.
    png.truncate(png.len() / 2);
    let fill = Fill {
        pictures: [("photo".to_string(), Picture::from_bytes(png).unwrap())].into(),
        ..Fill::default()
    };
    let e = Scene::compose(&template, &fill, fonts())
        .unwrap()
        .png()
        .unwrap_err();
    assert_eq!(e.at, "values.photo");
    assert!(e.problem.contains("does not decode"), "{e}");

    // A JPEG cut short decodes "successfully" with a grey lower half: it is
    // refused from its structure before anything is drawn.
    let mut jpeg = Vec::new();
    picture
        .write_to(
            &mut std::io::Cursor::new(&mut jpeg),
            image::ImageFormat::Jpeg,
        )
        .unwrap();
    assert!(Picture::from_bytes(jpeg.clone()).is_ok());
    jpeg.truncate(jpeg.len() * 2 / 3);
    let refused = Picture::from_bytes(jpeg)
        .err()
        .expect("a cut JPEG is refused");
    assert!(refused.contains("truncated"), "{refused}");

    // A small file can describe a huge picture: refused before decoding.
    let header = {
        let mut png = vec![0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a];
        let mut ihdr = b"IHDR".to_vec();
        ihdr.extend(20_000u32.to_be_bytes());
        ihdr.extend(20_000u32.to_be_bytes());
        ihdr.extend([8, 2, 0, 0, 0]);
        for chunk in [ihdr, b"IDAT".to_vec(), b"IEND".to_vec()] {
            png.extend((chunk.len() as u32 - 4).to_be_bytes());
            png.extend(&chunk);
            png.extend(crc32(&chunk).to_be_bytes());
        }
        png
    };
    let why = Picture::from_bytes(header).err().expect("refused");
    assert!(why.contains("too large"), "{why}");
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}
