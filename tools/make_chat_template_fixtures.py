"""Writes Tests/Fixtures/chat_templates/*.json: public chat templates (their text is below) and
what transformers' apply_chat_template(tokenize=False) renders for several conversations, or the
message of the exception the template raises. Run from the repository root:

    python tools/make_chat_template_fixtures.py

(needs transformers and jinja2; no torch).
"""
import json
import os

import jinja2
import transformers
from transformers.utils.chat_template_utils import render_jinja_template

LLAMA3 = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + "
    "message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
    "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)

LLAMA31 = """{{- bos_token }}
{%- if custom_tools is defined %}
    {%- set tools = custom_tools %}
{%- endif %}
{%- if not tools_in_user_message is defined %}
    {%- set tools_in_user_message = true %}
{%- endif %}
{%- if not date_string is defined %}
    {%- set date_string = "26 Jul 2024" %}
{%- endif %}
{%- if not tools is defined %}
    {%- set tools = none %}
{%- endif %}

{#- This block extracts the system message, so we can slot it into the right place. #}
{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content']|trim %}
    {%- set messages = messages[1:] %}
{%- else %}
    {%- set system_message = "" %}
{%- endif %}

{#- System message + builtin tools #}
{{- "<|start_header_id|>system<|end_header_id|>\\n\\n" }}
{%- if builtin_tools is defined or tools is not none %}
    {{- "Environment: ipython\\n" }}
{%- endif %}
{%- if builtin_tools is defined %}
    {{- "Tools: " + builtin_tools | reject('equalto', 'code_interpreter') | join(", ") + "\\n\\n"}}
{%- endif %}
{{- "Cutting Knowledge Date: December 2023\\n" }}
{{- "Today Date: " + date_string + "\\n\\n" }}
{%- if tools is not none and not tools_in_user_message %}
    {{- "You have access to the following functions. To call a function, please respond with JSON for a function call." }}
    {{- 'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.' }}
    {{- "Do not use variables.\\n\\n" }}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
        {{- "\\n\\n" }}
    {%- endfor %}
{%- endif %}
{{- system_message }}
{{- "<|eot_id|>" }}

{#- Custom tools are passed in a user message with some extra guidance #}
{%- if tools_in_user_message and not tools is none %}
    {#- Extract the first user message so we can plug it in here #}
    {%- if messages | length != 0 %}
        {%- set first_user_message = messages[0]['content']|trim %}
        {%- set messages = messages[1:] %}
    {%- else %}
        {{- raise_exception("Cannot put tools in the first user message when there's no first user message!") }}
{%- endif %}
    {{- '<|start_header_id|>user<|end_header_id|>\\n\\n' -}}
    {{- "Given the following functions, please respond with a JSON for a function call " }}
    {{- "with its proper arguments that best answers the given prompt.\\n\\n" }}
    {{- 'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.' }}
    {{- "Do not use variables.\\n\\n" }}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
        {{- "\\n\\n" }}
    {%- endfor %}
    {{- first_user_message + "<|eot_id|>"}}
{%- endif %}

{%- for message in messages %}
    {%- if not (message.role == 'ipython' or message.role == 'tool' or 'tool_calls' in message) %}
        {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' }}
    {%- elif 'tool_calls' in message %}
        {%- if not message.tool_calls|length == 1 %}
            {{- raise_exception("This model only supports single tool-calls at once!") }}
        {%- endif %}
        {%- set tool_call = message.tool_calls[0].function %}
        {%- if builtin_tools is defined and tool_call.name in builtin_tools %}
            {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' -}}
            {{- "<|python_tag|>" + tool_call.name + ".call(" }}
            {%- for arg_name, arg_val in tool_call.arguments | items %}
                {{- arg_name + '="' + arg_val + '"' }}
                {%- if not loop.last %}
                    {{- ", " }}
                {%- endif %}
                {%- endfor %}
            {{- ")" }}
        {%- else  %}
            {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' -}}
            {{- '{"name": "' + tool_call.name + '", ' }}
            {{- '"parameters": ' }}
            {{- tool_call.arguments | tojson }}
            {{- "}" }}
        {%- endif %}
        {%- if builtin_tools is defined %}
            {#- This means we're in ipython mode #}
            {{- "<|eom_id|>" }}
        {%- else %}
            {{- "<|eot_id|>" }}
        {%- endif %}
    {%- elif message.role == "tool" or message.role == "ipython" %}
        {{- "<|start_header_id|>ipython<|end_header_id|>\\n\\n" }}
        {%- if message.content is mapping or message.content is iterable %}
            {{- message.content | tojson }}
        {%- else %}
            {{- message.content }}
        {%- endif %}
        {{- "<|eot_id|>" }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}
{%- endif %}
"""

QWEN25 = """{%- if tools %}
    {{- '<|im_start|>system\\n' }}
    {%- if messages[0]['role'] == 'system' %}
        {{- messages[0]['content'] }}
    {%- else %}
        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}
    {%- endif %}
    {{- "\\n\\n# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\nYou are provided with function signatures within <tools></tools> XML tags:\\n<tools>" }}
    {%- for tool in tools %}
        {{- "\\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\\n</tools>\\n\\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\\n<tool_call>\\n{\\"name\\": <function-name>, \\"arguments\\": <args-json-object>}\\n</tool_call><|im_end|>\\n" }}
{%- else %}
    {%- if messages[0]['role'] == 'system' %}
        {{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}
    {%- else %}
        {{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}
    {%- endif %}
{%- endif %}
{%- for message in messages %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) or (message.role == "assistant" and not message.tool_calls) %}
        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}
    {%- elif message.role == "assistant" %}
        {{- '<|im_start|>' + message.role }}
        {%- if message.content %}
            {{- '\\n' + message.content }}
        {%- endif %}
        {%- for tool_call in message.tool_calls %}
            {%- if tool_call.function is defined %}
                {%- set tool_call = tool_call.function %}
            {%- endif %}
            {{- '\\n<tool_call>\\n{"name": "' }}
            {{- tool_call.name }}
            {{- '", "arguments": ' }}
            {{- tool_call.arguments | tojson }}
            {{- '}\\n</tool_call>' }}
        {%- endfor %}
        {{- '<|im_end|>\\n' }}
    {%- elif message.role == "tool" %}
        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\\n<tool_response>\\n' }}
        {{- message.content }}
        {{- '\\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
            {{- '<|im_end|>\\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\\n' }}
{%- endif %}
"""

MISTRAL_V03 = """{%- if messages[0]["role"] == "system" %}
    {%- set system_message = messages[0]["content"] %}
    {%- set loop_messages = messages[1:] %}
{%- else %}
    {%- set loop_messages = messages %}
{%- endif %}
{%- if not tools is defined %}
    {%- set tools = none %}
{%- endif %}
{%- set user_messages = loop_messages | selectattr("role", "equalto", "user") | list %}

{#- This block checks for alternating user/assistant messages, skipping tool calling messages #}
{%- set ns = namespace() %}
{%- set ns.index = 0 %}
{%- for message in loop_messages %}
    {%- if not (message.role == "tool" or message.role == "tool_results" or (message.tool_calls is defined and message.tool_calls is not none)) %}
        {%- if (message["role"] == "user") != (ns.index % 2 == 0) %}
            {{- raise_exception("After the optional system message, conversation roles must alternate user/assistant/user/assistant/...") }}
        {%- endif %}
        {%- set ns.index = ns.index + 1 %}
    {%- endif %}
{%- endfor %}

{{- bos_token }}
{%- for message in loop_messages %}
    {%- if message["role"] == "user" %}
        {%- if tools is not none and (message == user_messages[-1]) %}
            {{- "[AVAILABLE_TOOLS] [" }}
            {%- for tool in tools %}
                {%- set tool = tool.function %}
                {{- '{"type": "function", "function": {' }}
                {%- for key, val in tool.items() if key != "return" %}
                    {%- if val is string %}
                        {{- '"' + key + '": "' + val + '"' }}
                    {%- else %}
                        {{- '"' + key + '": ' + val|tojson }}
                    {%- endif %}
                    {%- if not loop.last %}
                        {{- ", " }}
                    {%- endif %}
                {%- endfor %}
                {{- "}}" }}
                {%- if not loop.last %}
                    {{- ", " }}
                {%- else %}
                    {{- "]" }}
                {%- endif %}
            {%- endfor %}
            {{- "[/AVAILABLE_TOOLS]" }}
            {%- endif %}
        {%- if loop.last and system_message is defined %}
            {{- "[INST] " + system_message + "\\n\\n" + message["content"] + "[/INST]" }}
        {%- else %}
            {{- "[INST] " + message["content"] + "[/INST]" }}
        {%- endif %}
    {%- elif message.tool_calls is defined and message.tool_calls is not none %}
        {{- "[TOOL_CALLS] [" }}
        {%- for tool_call in message.tool_calls %}
            {%- set out = tool_call.function|tojson %}
            {{- out[:-1] }}
            {%- if not tool_call.id is defined or tool_call.id|length != 9 %}
                {{- raise_exception("Tool call IDs should be alphanumeric strings with length 9!") }}
            {%- endif %}
            {{- ', "id": "' + tool_call.id + '"}' }}
            {%- if not loop.last %}
                {{- ", " }}
            {%- else %}
                {{- "]" + eos_token }}
            {%- endif %}
        {%- endfor %}
    {%- elif message["role"] == "assistant" %}
        {{- " " + message["content"]|trim + eos_token}}
    {%- elif message["role"] == "tool_results" or message["role"] == "tool" %}
        {%- if message.content is defined and message.content.content is defined %}
            {%- set content = message.content.content %}
        {%- else %}
            {%- set content = message.content %}
        {%- endif %}
        {{- '[TOOL_RESULTS] {"content": ' + content|string + ", " }}
        {%- if not message.tool_call_id is defined or message.tool_call_id|length != 9 %}
            {{- raise_exception("Tool call IDs should be alphanumeric strings with length 9!") }}
        {%- endif %}
        {{- '"call_id": "' + message.tool_call_id + '"}[/TOOL_RESULTS]' }}
    {%- else %}
        {{- raise_exception("Only user and assistant roles are supported, with the exception of an initial optional system message!") }}
    {%- endif %}
{%- endfor %}
"""

SMOLLM2 = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\n"
    "You are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

PHI3 = (
    "{% for message in messages %}{% if message['role'] == 'system' %}{{'<|system|>\n' + message['content'] + "
    "'<|end|>\n'}}{% elif message['role'] == 'user' %}{{'<|user|>\n' + message['content'] + '<|end|>\n'}}"
    "{% elif message['role'] == 'assistant' %}{{'<|assistant|>\n' + message['content'] + '<|end|>\n'}}{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}"
)

GEMMA = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
    "{% endif %}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}"
    "{% endif %}{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}"
)

TEMPLATES = {
    "llama3": (LLAMA3, "<|begin_of_text|>", "<|eot_id|>"),
    "llama3_1": (LLAMA31, "<|begin_of_text|>", "<|eot_id|>"),
    "qwen2_5": (QWEN25, "", "<|im_end|>"),
    "mistral_v0_3": (MISTRAL_V03, "<s>", "</s>"),
    "smollm2": (SMOLLM2, "", "<|im_end|>"),
    "phi3": (PHI3, "<s>", "<|endoftext|>"),
    "gemma": (GEMMA, "<bos>", "<eos>"),
}

SYSTEM = {"role": "system", "content": "You are a terse assistant."}
U1 = {"role": "user", "content": "Hello! What is 2 + 2?"}
A1 = {"role": "assistant", "content": "  4.  "}
U2 = {"role": "user", "content": "And times three?"}
A2 = {"role": "assistant", "content": "12"}
SPECIAL = {"role": "user", "content": "Quotes ' \" and \\ backslash,\n\tnew lines\r\n, {{ braces }} {% tags %},"
           " unicode: héllo 日本語 🙂👩‍👩‍👧 <|im_end|>"}
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
                         "required": ["city"]}}}]

CONVERSATIONS = {
    "system_user": [SYSTEM, U1],
    "user_only": [U1],
    "multi_turn": [U1, A1, U2, A2, dict(U2, content="Thanks.")],
    "system_multi_turn": [SYSTEM, U1, A1, U2],
    "special_characters": [SPECIAL],
    "ends_with_assistant": [U1, A1],
    "non_alternating": [U1, U2],
    "assistant_first": [A1, U1],
}


def render(template, bos, eos, messages, add_generation_prompt, extra):
    kwargs = dict(extra)
    tools = kwargs.pop("tools", None)
    rendered, _ = render_jinja_template(
        conversations=[messages], tools=tools, chat_template=template,
        add_generation_prompt=add_generation_prompt, bos_token=bos, eos_token=eos, **kwargs)
    return rendered[0]


def whitespace_cases(count=120, seed=13):
    """Random templates of text, spaces, tabs, newlines and tags with every whitespace-control
    marker, for the lexer's trim_blocks / lstrip_blocks / `-` / `+` handling."""
    import random
    rng = random.Random(seed)
    pieces = [" ", "  ", "\t", "\n", "\n\n", "a", "b c", " x\n  ", "\r\n",
              "{% if true %}", "{%- if true %}", "{% if true -%}", "{%+ if true %}", "{%- if true -%}",
              "{{ 'v' }}", "{{- 'v' }}", "{{ 'v' -}}", "{{- 'v' -}}", "{# c #}", "{#- c #}", "{# c -#}",
              "{% set x = 1 %}", "{%- set x = 1 -%}", "{% for i in range(2) %}i{% endfor %}"]
    cases = []
    for index in range(count):
        parts = []
        open_ifs = 0
        for _ in range(rng.randint(3, 12)):
            piece = rng.choice(pieces)
            parts.append(piece)
            if "if true" in piece:
                open_ifs += 1
        for _ in range(open_ifs):
            parts.append(rng.choice(["{% endif %}", "{%- endif %}", "{% endif -%}", "\n{% endif %}\n", "  {% endif %}"]))
        template = "".join(parts)
        if rng.random() < 0.3:
            template += "\n"
        expected = render(template, "", "", [], False, {})
        cases.append({"template": template, "expected": expected})
    return cases


EXPRESSIONS = [
    "{{ 1.0 }} {{ 0.1 + 0.2 }} {{ 1e20 }} {{ 1e-7 }} {{ 2.5e15 }} {{ -0.0 }} {{ 10 / 4 }} {{ 7 // -2 }} {{ -7 % 3 }} {{ 2 ** -1 }}",
    "{{ [1, 'a', none, true, 1.5, {'k': 'v'}, ('t',)] }}",
    "{{ \"it's\" }} {{ ['it\\'s', 'q\"', 'b\\\\s', 'nl\\n'] }}",
    "{{ {'b': [1, 2], 'a': {'c': none}} | tojson }}|{{ {'b': 1, 'a': 2} | tojson(indent=2, sort_keys=true) }}",
    "{{ [1, [2, []], {}] | tojson(indent=1) }}|{{ 'é\\n\"\\u0001' | tojson }}|{{ 1.5 | tojson }}|{{ none | tojson }}",
    "{{ {'a': 1} | tojson(separators=[',', ':']) }}",
    "{{ '  a b  ' | trim }}|{{ 'xxaxx' | trim('x') }}|{{ ' a '.lstrip() }}|{{ ' a '.rstrip() }}|{{ 'xay'.strip('xy') }}",
    "{{ 'a,b,,c'.split(',') }} {{ 'a b  c'.split(' ') }} {{ ' a\\tb\\n c '.split() }} {{ 'a,b,c'.split(',', 1) }}",
    "{{ 'hello world-foo' | title }} {{ 'HELLO wORLD' | capitalize }} {{ 'straße' | upper }} {{ 'ÀB' | lower }}",
    "{{ [3, 1, 2] | first }} {{ [3, 1, 2] | last }} {{ 'abc' | first }} {{ [1, 2, 3] | join }} {{ ['a', 'b'] | join(', ') }}",
    "{{ x | default('d') }} {{ none | default('d') }} {{ '' | default('d', true) }} {{ 0 | d('z', boolean=true) }}",
    "{{ {'a': 1, 'b': 2} | items | list }} {{ 'ab' | list }} {{ 3 | string }} {{ ' 42 ' | int }} {{ 'x' | int }} {{ 3.9 | int }} {{ '2.5' | float }}",
    "{{ 'aXbXc' | replace('X', '-') }} {{ 'aaa'.replace('a', 'b', 1) }} {{ 'abc'.replace('', '.') }}",
    "{{ [1, 2, 3][-1] }} {{ [1, 2, 3][5] }}|{{ [1, 2, 3, 4, 5][1:4:2] }} {{ [1, 2, 3][-2:] }} {{ 'abcdef'[::2] }} {{ 'abcdef'[4:1:-1] }} {{ [1, 2][10:] }}",
    "{{ 'ab' in 'cabd' }} {{ 1 in [1.0] }} {{ 'k' in {'k': 1} }} {{ 'z' not in 'abc' }} {{ '' in 'x' }}",
    "{{ 1 == 1.0 }} {{ true == 1 }} {{ 'a' < 'b' }} {{ 'B' < 'a' }} {{ [1, 2] == [1, 2] }} {{ none == none }} {{ x == none }} {{ 2 >= 2.0 }}",
    "{{ 'a' if false }}|{{ 'a' if 0 else 'b' if '' else 'c' }}|{{ 1 and 'x' }}|{{ 0 or '' or 'y' }}|{{ not [] }}",
    "{{ 1 is number }} {{ true is number }} {{ 'a' is string }} {{ x is undefined }} {{ none is none }} {{ {} is mapping }} {{ 'a' is iterable }} {{ 3 is odd }} {{ 1 is true }} {{ true is boolean }} {{ 1.0 is float }} {{ 1 is integer }}",
    "{{ 9 is divisibleby 3 }} {{ 2 is lt 3 }} {{ 'a' is in 'abc' }} {{ 'x' is eq 'x' }} {{ 'ABC' is upper }} {{ 5 is ne 5 }}",
    "{% for a, b in [[1, 2], [3, 4]] %}{{ a + b }}{% endfor %}|{% for k in {'x': 1, 'y': 2} %}{{ k }}{% endfor %}|{% for c in 'hé' %}[{{ c }}]{% endfor %}",
    "{% for i in range(3) %}{{ loop.revindex }}{{ loop.revindex0 }}{{ loop.previtem }}{{ loop.nextitem }};{% endfor %}",
    "{% for i in range(5) if i > 1 %}{{ loop.index }}/{{ loop.length }}{{ ',' if not loop.last }}{% endfor %}",
    "{% for i in [1] %}{% for j in [2, 3] %}{{ loop.index }}{% endfor %}{{ loop.index }}{% endfor %}",
    "{% set ns = namespace(found=false, items=[]) %}{% for m in [1, 2, 3] %}{% if m == 2 %}{% set ns.found = true %}{% endif %}{% set ns.items = ns.items + [m] %}{% endfor %}{{ ns.found }} {{ ns.items }}",
    "{% set a, b = 'xy' %}{{ b }}{{ a }} {% set t = 1, 2 %}{{ t }} {% set d = dict(x=1, y='z') %}{{ d }} {{ d.x }} {{ d['y'] }}",
    "{% set x = 5 %}{% for i in [1] %}{% set x = 6 %}{{ x }}{% endfor %}{{ x }}{% if true %}{% set x = 7 %}{% endif %}{{ x }}",
    "{{ range(3) | list }} {{ range(1, 10, 3) | list }} {{ range(5, 0, -2) | list }} {{ range(0) | list }}",
    "{{ [{'r': 'u', 'c': 1}, {'r': 'a', 'c': 2}, {'r': 'u', 'c': 3}] | selectattr('r', 'equalto', 'u') | map(attribute='c') | list }}",
    "{{ [{'r': 'u'}, {'x': 1}] | selectattr('r', 'defined') | list | length }} {{ [1, 0, 2] | select | list }} {{ [1, 2, 3] | reject('odd') | list }}",
    "{{ {'a': 1}.get('a') }} {{ {'a': 1}.get('b') }} {{ {'a': 1}.get('b', 'z') }} {{ {'a': 1, 'b': 2}.values() | list }} {{ {'a': 1}.items() | list }}",
    "{{ 'abc'.startswith('ab') }} {{ 'abc'.endswith(('x', 'c')) }} {{ 'a-b'.upper() }} {{ 'ab'.title() }} {{ ', '.join(['x', 'y']) }} {{ 'banana'.count('an') }} {{ 'banana'.find('n') }} {{ 'banana'.find('z') }}",
    "{{ [1, 2] + [3] }} {{ 'ab' * 3 }} {{ 2 * [0] }} {{ 'a' ~ 1 ~ 2.5 ~ none ~ true ~ [1] }} {{ -(3) }} {{ +4 }} {{ 2 ** 3 ** 2 }}",
    "{{ messages }}{{ messages | length }}{{ tools }}{{ documents }}{{ add_generation_prompt }}",
    "{% set s %}a{{ 1 + 1 }}b{% endset %}[{{ s }}] {{ s | length }}",
    "{{ 'a\\tb' }}|{{ 'x' 'y' }}|{{ \"\\x41\\u00e9\" }}|{{ '\\\\' }}",
    "{% for x in [] %}a{% else %}empty{% endfor %} {% for x in [1, 2, 3] %}{% if x == 2 %}{% break %}{% endif %}{{ x }}{% endfor %}",
    "{{ [] | first }}|{{ [1, [2]] | length }}|{{ 'abc' | reverse }}|{{ [1, 2] | reverse | list }}|{{ -3 | abs }}",
    "{{ message.role }}|{{ x['y'] is defined }}",
    "{% if x %}a{% elif 0 %}b{% elif [1] %}c{% else %}d{% endif %}",
]


def expression_cases():
    cases = []
    for template in EXPRESSIONS:
        try:
            cases.append({"template": template, "expected": render(template, "<s>", "</s>", [], False, {})})
        except jinja2.exceptions.TemplateError as error:
            cases.append({"template": template, "error": f"{type(error).__name__}: {error}"})
    return cases


def main():
    out_dir = os.path.join("Tests", "Fixtures", "chat_templates")
    os.makedirs(out_dir, exist_ok=True)
    for name, (template, bos, eos) in TEMPLATES.items():
        cases = []
        extras = [("", {})]
        if name in ("qwen2_5", "llama3_1"):
            extras.append(("tools", {"tools": TOOLS}))
        if name == "llama3_1":
            extras.append(("date", {"date_string": "04 Dec 2026"}))
        for suffix, extra in extras:
            for conversation, messages in CONVERSATIONS.items():
                for add in (False, True):
                    case = {"name": f"{conversation}{'_' + suffix if suffix else ''}_{'gen' if add else 'nogen'}",
                            "messages": messages, "add_generation_prompt": add, "extra": extra}
                    try:
                        case["expected"] = render(template, bos, eos, messages, add, extra)
                    except jinja2.exceptions.TemplateError as error:
                        case["error"] = str(error)
                    cases.append(case)
        document = {"template_name": name, "chat_template": template, "bos_token": bos, "eos_token": eos,
                    "cases": cases}
        with open(os.path.join(out_dir, name + ".json"), "w", encoding="utf-8") as handle:
            json.dump(document, handle, ensure_ascii=False, indent=1)
            handle.write("\n")
    with open(os.path.join(out_dir, "whitespace.json"), "w", encoding="utf-8") as handle:
        json.dump({"cases": whitespace_cases()}, handle, ensure_ascii=False, indent=1)
        handle.write("\n")
    with open(os.path.join(out_dir, "expressions.json"), "w", encoding="utf-8") as handle:
        json.dump({"cases": expression_cases()}, handle, ensure_ascii=False, indent=1)
        handle.write("\n")
    print(f"transformers {transformers.__version__}, jinja2 {jinja2.__version__}: wrote {len(TEMPLATES)} files")


if __name__ == "__main__":
    main()
