import{j as t,T as e}from"./index-C5ChdGh-.js";function s(){return t.jsx(e,{order:2,children:"Sites"})}export{s as default};
