"""LaTeX in markdown cells drawn as SVG images (matplotlib mathtext; raw TeX in ``<code>`` when it cannot)."""

import base64
import html
import io
import re

_MATH_CACHE = {}
_CODE_SPANS = re.compile(r"(```.*?```|~~~.*?~~~|`[^`\n]*`)", re.S)
_DISPLAY_MATH = re.compile(r"\$\$(.+?)\$\$|\\\[(.+?)\\\]", re.S)
_INLINE_MATH = re.compile(r"(?<![\\$\w])\$(?![\s$])((?:\\\$|[^$\n])+?)(?<![\s\\])\$(?![\w$])|\\\((.+?)\\\)")


def math_img(tex, display=False, size=10.5):
    """An ``<img>`` tag with `tex` drawn as inline SVG, or a ``<code>`` fallback."""
    key = (tex, display, size)
    if key in _MATH_CACHE:
        return _MATH_CACHE[key]
    body = " ".join(tex.strip().split())
    candidates = [body]
    if display:  # display style: full-size fractions, as TeX sets them
        candidates.insert(0, re.sub(r"\\frac(?![a-zA-Z])", r"\\dfrac", body))
    tag = f'<code class="tex">{html.escape(tex.strip())}</code>'  # what mathtext cannot draw stays TeX
    import matplotlib
    from matplotlib.font_manager import FontProperties
    from matplotlib.mathtext import MathTextParser, math_to_image
    prop = FontProperties(size=size * (1.1 if display else 1.0), math_fontfamily="cm")
    for candidate in dict.fromkeys(candidates):
        try:
            with matplotlib.rc_context({"svg.fonttype": "path"}):
                parsed = MathTextParser("path").parse(f"${candidate}$", dpi=72, prop=prop)
                buf = io.BytesIO()
                math_to_image(f"${candidate}$", buf, prop=prop, dpi=72, format="svg")
        except Exception:
            continue
        data = base64.b64encode(buf.getvalue()).decode("ascii")
        cls = "math math-display" if display else "math"
        style = f"height:{parsed.height:.1f}pt;" + ("" if display else f"vertical-align:-{parsed.depth:.1f}pt;")
        tag = f'<img class="{cls}" style="{style}" alt="formula" src="data:image/svg+xml;base64,{data}"/>'
        break
    _MATH_CACHE[key] = tag
    return tag


def render_math(markdown):
    """Replace ``$$...$$``, ``\\[...\\]``, ``$...$`` and ``\\(...\\)`` (outside code) by images."""
    parts = _CODE_SPANS.split(markdown)
    for i in range(0, len(parts), 2):  # even parts are outside code
        text = _DISPLAY_MATH.sub(lambda m: "\n\n" + math_img(m.group(1) or m.group(2), True) + "\n\n", parts[i])
        parts[i] = _INLINE_MATH.sub(lambda m: math_img(m.group(1) or m.group(2)), text)
    return "".join(parts)
